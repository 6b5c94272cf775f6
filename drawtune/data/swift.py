"""ms-swift JSONL as a source of annotations: ``messages`` + ``images`` with JSON ``bbox_2d``
answers in a family's coordinates, or the grounding form with ``objects``."""

from __future__ import annotations

import json
from pathlib import Path

from ..coords import DEFAULT_SPEC, ResizeSpec, model_frame
from ..errors import InputError
from ..eval.parse import parse_answer
from .images import ImageFacts
from .records import (
    ReadResult,
    Reject,
    Rules,
    check_boxes,
    display_path,
    expect,
    image_facts,
    make_record,
    prefetch_images,
    read_text,
    resolve_image,
)

COORDS = ("qwen3_vl", "qwen2_5_vl", "pixels")


def _xyxy(box, src, rec, fld) -> list:
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise Reject(src, rec, fld, f"box {box!r:.60} is not four numbers")
    for j, v in enumerate(box):
        expect(v, "number", src, rec, f"{fld}[{j}]")
    return list(box)


def read_swift(
    path: Path,
    rules: Rules,
    coords: str,
    images_root: Path | None = None,
    spec: ResizeSpec = DEFAULT_SPEC,
    group_key: str | None = None,
) -> ReadResult:
    """Read ms-swift JSONL: ``messages`` + ``images`` with JSON ``bbox_2d`` answers in the
    ``coords`` convention (``qwen3_vl``, ``qwen2_5_vl`` or ``pixels``), or the grounding form
    with ``objects`` (``ref``, ``bbox``, ``bbox_type`` ``real`` = pixels or ``norm1000``)."""
    if coords not in COORDS:
        raise InputError(
            f"{path}: unknown coordinate convention {coords!r}; expected one of {COORDS}"
        )
    path = Path(path)
    src = display_path(path)
    root = Path(images_root) if images_root else path.parent
    out = ReadResult()
    lines = read_text(path, src).splitlines()
    prefetch_images(root, _swift_image_names(lines), rules)
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        rec = f"line {n}"
        try:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise Reject(src, rec, "", f"malformed JSON at column {e.colno}: {e.msg}") from None
            except RecursionError:
                raise Reject(src, rec, "", "JSON nested too deeply") from None
            expect(row, "object", src, rec, "")
            images = expect(row.get("images"), "list", src, rec, "images")
            if len(images) != 1:
                raise Reject(src, rec, "images", "expected exactly one image")
            name = images[0].get("path") if isinstance(images[0], dict) else images[0]
            group = row.get(group_key) if group_key else None
            if group is not None and not isinstance(group, str | int | float):
                expect(group, "string", src, rec, group_key)
            image = resolve_image(root, name, src, rec, "images[0]")
            facts = image_facts(image, src, rec, "images[0]", rules)
            if "objects" in row:
                raw = _swift_objects(row["objects"], facts, src, rec, spec)
            else:
                raw = _swift_answer(row, coords, facts, src, rec, spec)
            boxes = check_boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, group))
    return out


def _swift_image_names(lines):
    for line in lines:
        try:
            row = json.loads(line)
            img = row["images"][0]
            yield img.get("path") if isinstance(img, dict) else img
        except Exception:  # noqa: BLE001 - the reader reports malformed rows
            continue


def _swift_answer(row, coords, facts: ImageFacts, src, rec, spec):
    msgs = expect(row.get("messages"), "list", src, rec, "messages")
    for k, m in enumerate(msgs):
        expect(m, "object", src, rec, f"messages[{k}]")
    answers = [m for m in msgs if m.get("role") == "assistant"]
    if len(answers) != 1:
        raise Reject(src, rec, "messages", "expected exactly one assistant message")
    fld = "messages[assistant].content"
    parsed = parse_answer(expect(answers[0].get("content"), "string", src, rec, fld))
    if not parsed.ok or parsed.salvaged:
        raise Reject(src, rec, fld, "answer is not a JSON list of bbox_2d objects")
    raw = []
    for k, (label, box) in enumerate(parsed.boxes):
        px = box
        if coords != "pixels":
            px = _model_to_pixels(box, coords, facts.width, facts.height, spec)
            if px is None:
                frame = model_frame(coords, facts.width, facts.height, spec)
                raise Reject(
                    src,
                    rec,
                    f"{fld}[{k}].bbox",
                    f"box {box} lies outside the {coords} coordinate frame {frame}",
                )
        raw.append((f"{fld}[{k}]", label, px))
    return raw


def _swift_objects(objs, facts: ImageFacts, src, rec, spec):
    if not isinstance(objs, dict):
        raise Reject(src, rec, "objects", "objects must be {ref: [...], bbox: [[...]]}")
    refs, bboxes = objs.get("ref"), objs.get("bbox")
    kind = objs.get("bbox_type", "real")
    if not isinstance(refs, list) or not isinstance(bboxes, list) or len(refs) != len(bboxes):
        raise Reject(src, rec, "objects", "objects.ref and objects.bbox must be equal-length lists")
    if kind not in ("real", "norm1000"):
        raise Reject(src, rec, "objects.bbox_type", f"bbox_type {kind!r} is not real or norm1000")
    raw = []
    for k, (label, box) in enumerate(zip(refs, bboxes, strict=True)):
        fld = f"objects.bbox[{k}]"
        box = _xyxy(box, src, rec, fld)
        if kind == "norm1000":
            px = _model_to_pixels(box, "qwen3_vl", facts.width, facts.height, spec)
            if px is None:
                raise Reject(src, rec, fld, f"box {box} lies outside the 0-1000 frame")
            box = px
        raw.append((f"objects[{k}]", label, box))
    return raw


def _model_to_pixels(box, family, w, h, spec):
    """Model-frame box -> pixels without clamping, or None when it leaves the frame."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return list(box)  # the box check names the bad value
    fx, fy = model_frame(family, w, h, spec)
    if min(x1, y1, x2, y2) < 0 or max(x1, x2) > fx or max(y1, y2) > fy:
        return None
    return [x1 * w / fx, y1 * h / fy, x2 * w / fx, y2 * h / fy]
