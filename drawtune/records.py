"""Reading annotated drawings into one record form, with validation and rejects.

A *record* is one image with its boxes in original pixels::

    {"source": file, "record": id, "image": path, "sha256": hex, "width": w, "height": h,
     "boxes": [{"label": str, "bbox": [x1, y1, x2, y2]}], "group": str|None}

Every record read is either returned or rejected with ``{"file", "record", "field", "reason"}``.
A record with any bad box is rejected whole: a drawing with some objects dropped would teach
the model to miss them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .coords import DEFAULT_SPEC, ResizeSpec, model_frame
from .images import ImageFacts, ImageProblem, inspect, prefetch, split_page
from .parse import parse_answer

log = logging.getLogger("drawtune")
COORDS = ("qwen3_vl", "qwen2_5_vl", "pixels")


class InputError(Exception):
    """A whole input file cannot be read; the message names file, position and cause."""


@dataclass
class Reject(Exception):
    file: str
    record: str
    field: str
    reason: str

    def row(self) -> dict:
        return {
            "file": self.file,
            "record": self.record,
            "field": self.field,
            "reason": self.reason,
        }


@dataclass
class ReadResult:
    records: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)

    @property
    def n_read(self) -> int:
        return len(self.records) + len(self.rejects)


@dataclass(frozen=True)
class Rules:
    """Validation settings of one dataset."""

    classes: tuple[str, ...]
    aliases: dict | None = None
    clip_tolerance: float = 2.0  # pixels a box may cross the border and be clipped
    max_image_pixels: int = 100_000_000
    drop: tuple[str, ...] = ()  # labels whose boxes are removed (after aliases)
    pdf_dpi: int = 150  # rasterisation of PDF pages
    box_units: str = "pixels"  # or "pdf_points": boxes on PDF pages given in points (1/72 in)
    normalised_dir: Path | None = None  # where converted pages/images are written
    cache_dir: Path | None = None  # memo of image facts (file identity -> facts)
    workers: int = 1  # threads that decode and hash images


def display_path(p: Path) -> str:
    """Path relative to the working directory when inside it, else absolute: stable across
    clones, and what ms-swift resolves from the workflow's working directory."""
    p = Path(os.path.abspath(p))
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _load_json(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None


def _resolve_image(root: Path, ref: str, src: str, rec: str, fld: str) -> str:
    """The image reference made absolute (``path`` or ``path#page``), checked to stay inside
    ``root`` and to exist."""
    if not isinstance(ref, str) or not ref:
        raise Reject(src, rec, fld, "missing image path")
    try:
        name, page = split_page(ref)
    except ImageProblem as e:
        raise Reject(src, rec, fld, str(e)) from None
    if os.path.isabs(name):
        raise Reject(src, rec, fld, f"absolute image path {name!r} is not allowed")
    base = os.path.abspath(root)
    path = Path(os.path.abspath(os.path.join(base, name)))
    if os.path.commonpath([str(path), base]) != base:
        raise Reject(src, rec, fld, f"image path {name!r} escapes the dataset root {root}")
    if not path.is_file():
        raise Reject(src, rec, fld, f"image file {path} does not exist")
    return f"{path}#{page}" if page > 1 else str(path)


def image_facts(ref: str, src: str, rec: str, fld: str, rules: Rules) -> ImageFacts:
    try:
        return inspect(
            ref,
            rules.normalised_dir,
            dpi=rules.pdf_dpi,
            max_pixels=rules.max_image_pixels,
            cache_dir=rules.cache_dir,
        )
    except ImageProblem as e:
        raise Reject(src, rec, fld, str(e)) from None


def _progress(msg: str) -> None:
    """Progress of image decoding: into the log and, for the terminal, onto stderr."""
    log.info(msg)
    print(f"validate: {msg}", file=sys.stderr, flush=True)


def prefetch_images(root: Path, names, rules: Rules) -> None:
    """Decode the images of a file in parallel before the reader walks it in order."""
    refs = []
    for name in names:
        try:
            refs.append(_resolve_image(root, name, "", "", ""))
        except Reject:
            continue  # the reader reports it with file, record and field
    if len(refs) < 2:
        return
    prefetch(
        refs,
        rules.workers,
        progress=_progress,
        normalised_dir=rules.normalised_dir,
        dpi=rules.pdf_dpi,
        max_pixels=rules.max_image_pixels,
        cache_dir=rules.cache_dir,
    )


def box_scale(facts: ImageFacts, rules: Rules) -> float:
    """Factor from annotation units to pixels of the image the model sees."""
    return facts.scale if rules.box_units == "pdf_points" else 1.0


def _check_box(box, label, w, h, src, rec, fld, rules: Rules, scale: float = 1.0):
    """One box in source units -> ``{"label", "bbox"}`` in pixels, or None for a dropped label."""
    label = (rules.aliases or {}).get(label, label)
    if label in rules.drop:
        return None
    if label not in rules.classes:
        raise Reject(
            src, rec, fld + ".label", f"unknown label {label!r}; classes are {list(rules.classes)}"
        )
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box
    ):
        raise Reject(src, rec, fld + ".bbox", f"box {box} has a non-finite or non-number value")
    x1, y1, x2, y2 = (float(v) * scale for v in box)
    if x2 <= x1 or y2 <= y1:
        raise Reject(src, rec, fld + ".bbox", f"box {box} is inverted or has zero area")
    tol = rules.clip_tolerance
    if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
        raise Reject(src, rec, fld + ".bbox", f"box {box} lies outside the {w}x{h} image")
    c = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if c != (x1, y1, x2, y2):
        log.warning("%s %s %s: box %s clipped to the %dx%d image", src, rec, fld, box, w, h)
    return {"label": label, "bbox": [round(v, 3) for v in c]}


def _boxes(raw, facts: ImageFacts, src, rec, rules: Rules) -> list[dict]:
    """``raw``: (field, label, [x1, y1, x2, y2] in source units) for one image."""
    scale = box_scale(facts, rules)
    out = []
    for fld, label, box in raw:
        b = _check_box(box, label, facts.width, facts.height, src, rec, fld, rules, scale)
        if b is not None:
            out.append(b)
    return out


def _xyxy(box, src, rec, fld) -> list:
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise Reject(src, rec, fld, f"box {box!r} is not four numbers")
    return list(box)


def read_coco(
    path: Path, rules: Rules, images_root: Path | None = None, group_key: str | None = None
) -> ReadResult:
    """Read a COCO detection file; file names resolve against its folder or ``images_root``."""
    path = Path(path)
    src = display_path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{src}: not a COCO file (no 'images' list)")
    root = Path(images_root) if images_root else path.parent
    cats = {c.get("id"): c.get("name") for c in data.get("categories", []) if isinstance(c, dict)}
    anns: dict = {}
    for k, a in enumerate(data.get("annotations", [])):
        anns.setdefault(a.get("image_id") if isinstance(a, dict) else None, []).append((k, a))
    prefetch_images(
        root, [i.get("file_name") for i in data["images"] if isinstance(i, dict)], rules
    )
    out = ReadResult()
    ids = {img.get("id") for img in data["images"] if isinstance(img, dict)}
    for key, items in anns.items():
        if key not in ids:  # annotations no image claims are reported, never dropped silently
            for k, a in items:
                why = "is not an object" if not isinstance(a, dict) else f"image_id {key!r}"
                out.rejects.append(
                    Reject(
                        src, f"annotations[{k}]", "image_id", f"annotation {why} matches no image"
                    ).row()
                )
    for i, img in enumerate(data["images"]):
        rec = f"images[{i}]" + (f" (id {img.get('id')})" if isinstance(img, dict) else "")
        try:
            if not isinstance(img, dict) or "id" not in img:
                raise Reject(src, rec, "id", "image entry without an id")
            image = _resolve_image(root, img.get("file_name"), src, rec, "file_name")
            facts = image_facts(image, src, rec, "file_name", rules)
            for key, actual in (("width", facts.width), ("height", facts.height)):
                if key in img and img[key] != actual:
                    raise Reject(
                        src, rec, key, f"declared {key} {img[key]} but the image has {actual}"
                    )
            raw = []
            for k, a in anns.get(img["id"], []):
                fld = f"annotations[{k}]"
                b = a.get("bbox")
                if not isinstance(b, list) or len(b) != 4:
                    raise Reject(src, rec, fld + ".bbox", f"bbox {b!r} is not [x, y, w, h]")
                if a.get("category_id") not in cats:
                    raise Reject(
                        src,
                        rec,
                        fld + ".category_id",
                        f"unknown category_id {a.get('category_id')!r}",
                    )
                if not all(isinstance(v, int | float) for v in b):
                    raise Reject(src, rec, fld + ".bbox", f"bbox {b!r} has a non-number")
                raw.append((fld, cats[a["category_id"]], [b[0], b[1], b[0] + b[2], b[1] + b[3]]))
            boxes = _boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        group = img.get(group_key) if group_key else None
        out.records.append(_record(src, rec, facts, boxes, group))
    return out


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
    lines = _text(path, src).splitlines()
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
            images = row.get("images") if isinstance(row, dict) else None
            if not isinstance(images, list) or len(images) != 1:
                raise Reject(src, rec, "images", "expected exactly one image")
            name = images[0].get("path") if isinstance(images[0], dict) else images[0]
            image = _resolve_image(root, name, src, rec, "images[0]")
            facts = image_facts(image, src, rec, "images[0]", rules)
            if "objects" in row:
                raw = _swift_objects(row["objects"], facts, src, rec, spec)
            else:
                raw = _swift_answer(row, coords, facts, src, rec, spec)
            boxes = _boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        group = row.get(group_key) if group_key else None
        out.records.append(_record(src, rec, facts, boxes, group))
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
    msgs = row.get("messages")
    answers = [m for m in msgs or [] if isinstance(m, dict) and m.get("role") == "assistant"]
    if len(answers) != 1:
        raise Reject(src, rec, "messages", "expected exactly one assistant message")
    fld = "messages[assistant].content"
    parsed = parse_answer(answers[0].get("content"))
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


def _text(path: Path, src: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{src}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{src}: cannot read ({e.strerror})") from None


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


def _record(src, rec, facts: ImageFacts, boxes, group):
    return {
        "source": src,
        "record": rec,
        "image": display_path(Path(facts.path)),
        "sha256": facts.sha256,
        "width": facts.width,
        "height": facts.height,
        "boxes": boxes,
        "group": group,
    }
