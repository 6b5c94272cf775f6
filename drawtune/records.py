"""Reading annotated drawings into one record form, with validation and rejects.

A *record* is one image with its boxes in original pixels::

    {"source": file, "record": id, "image": path, "sha256": hex, "width": w, "height": h,
     "boxes": [{"label": str, "bbox": [x1, y1, x2, y2]}], "group": str|None}

Every record read is either returned or rejected with ``{"file", "record", "field", "reason"}``.
A record with any bad box is rejected whole: a drawing with some objects dropped would teach
the model to miss them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .coords import DEFAULT_SPEC, ResizeSpec, model_frame
from .parse import parse_answer

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


def _resolve_image(root: Path, name: str, src: str, rec: str, fld: str) -> Path:
    if not isinstance(name, str) or not name:
        raise Reject(src, rec, fld, "missing image path")
    if os.path.isabs(name):
        raise Reject(src, rec, fld, f"absolute image path {name!r} is not allowed")
    base = os.path.abspath(root)
    path = Path(os.path.abspath(os.path.join(base, name)))
    if os.path.commonpath([str(path), base]) != base:
        raise Reject(src, rec, fld, f"image path {name!r} escapes the dataset root {root}")
    if not path.is_file():
        raise Reject(src, rec, fld, f"image file {path} does not exist")
    return path


def _image_facts(path: Path, src: str, rec: str, fld: str, rules: Rules):
    data = path.read_bytes()
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > rules.max_image_pixels:
                raise Reject(
                    src, rec, fld, f"{w}x{h} image exceeds the pixel limit {rules.max_image_pixels}"
                )
            im.load()
    except Reject:
        raise
    except Exception as e:  # PIL raises many types for broken files
        raise Reject(src, rec, fld, f"unreadable image {path}: {e}") from None
    return hashlib.sha256(data).hexdigest(), w, h


def _check_box(box, label, w, h, src, rec, fld, rules: Rules):
    label = (rules.aliases or {}).get(label, label)
    if label not in rules.classes:
        raise Reject(
            src, rec, fld + ".label", f"unknown label {label!r}; classes are {list(rules.classes)}"
        )
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in box):
        raise Reject(src, rec, fld + ".bbox", f"box {box} has a non-finite value")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise Reject(src, rec, fld + ".bbox", f"box {box} is inverted or has zero area")
    tol = rules.clip_tolerance
    if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
        raise Reject(src, rec, fld + ".bbox", f"box {box} lies outside the {w}x{h} image")
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    return {"label": label, "bbox": [round(x1, 3), round(y1, 3), round(x2, 3), round(y2, 3)]}


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
    out = ReadResult()
    for i, img in enumerate(data["images"]):
        rec = f"images[{i}]" + (f" (id {img.get('id')})" if isinstance(img, dict) else "")
        try:
            if not isinstance(img, dict) or "id" not in img:
                raise Reject(src, rec, "id", "image entry without an id")
            image = _resolve_image(root, img.get("file_name"), src, rec, "file_name")
            sha, w, h = _image_facts(image, src, rec, "file_name", rules)
            for key, actual in (("width", w), ("height", h)):
                if key in img and img[key] != actual:
                    raise Reject(
                        src, rec, key, f"declared {key} {img[key]} but the image has {actual}"
                    )
            boxes = []
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
                xyxy = [b[0], b[1], b[0] + b[2], b[1] + b[3]]
                boxes.append(_check_box(xyxy, cats[a["category_id"]], w, h, src, rec, fld, rules))
        except Reject as r:
            out.rejects.append(r.row())
            continue
        group = img.get(group_key) if group_key else None
        out.records.append(_record(src, rec, image, sha, w, h, boxes, group))
    return out


def read_swift(
    path: Path,
    rules: Rules,
    coords: str,
    images_root: Path | None = None,
    spec: ResizeSpec = DEFAULT_SPEC,
    group_key: str | None = None,
) -> ReadResult:
    """Read ms-swift JSONL (``messages`` + ``images``) with JSON ``bbox_2d`` answers in the
    ``coords`` convention (``qwen3_vl``, ``qwen2_5_vl`` or ``pixels``)."""
    if coords not in COORDS:
        raise InputError(
            f"{path}: unknown coordinate convention {coords!r}; expected one of {COORDS}"
        )
    path = Path(path)
    src = display_path(path)
    root = Path(images_root) if images_root else path.parent
    out = ReadResult()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{src}: not UTF-8 text ({e.reason} at byte {e.start})") from None
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
            name = images[0]["path"] if isinstance(images[0], dict) else images[0]
            image = _resolve_image(root, name, src, rec, "images[0]")
            sha, w, h = _image_facts(image, src, rec, "images[0]", rules)
            msgs = row.get("messages")
            answers = [
                m for m in msgs or [] if isinstance(m, dict) and m.get("role") == "assistant"
            ]
            if len(answers) != 1:
                raise Reject(src, rec, "messages", "expected exactly one assistant message")
            parsed = parse_answer(answers[0].get("content"))
            if not parsed.ok or parsed.salvaged:
                raise Reject(
                    src,
                    rec,
                    "messages[assistant].content",
                    "answer is not a JSON list of bbox_2d objects",
                )
            boxes = []
            for k, (label, box) in enumerate(parsed.boxes):
                px = box if coords == "pixels" else _model_to_pixels(box, coords, w, h, spec)
                if px is None:
                    raise Reject(
                        src,
                        rec,
                        f"messages[assistant].content[{k}].bbox",
                        f"box {box} lies outside the {coords} coordinate frame "
                        f"{model_frame(coords, w, h, spec)}",
                    )
                boxes.append(
                    _check_box(
                        px, label, w, h, src, rec, f"messages[assistant].content[{k}]", rules
                    )
                )
        except Reject as r:
            out.rejects.append(r.row())
            continue
        group = row.get(group_key) if group_key else None
        out.records.append(_record(src, rec, image, sha, w, h, boxes, group))
    return out


def _model_to_pixels(box, family, w, h, spec):
    """Model-frame box -> pixels without clamping, or None when it leaves the frame."""
    fx, fy = model_frame(family, w, h, spec)
    x1, y1, x2, y2 = (float(v) for v in box)
    if min(x1, y1, x2, y2) < 0 or max(x1, x2) > fx or max(y1, y2) > fy:
        return None
    return [x1 * w / fx, y1 * h / fy, x2 * w / fx, y2 * h / fy]


def _record(src, rec, image, sha, w, h, boxes, group):
    return {
        "source": src,
        "record": rec,
        "image": display_path(image),
        "sha256": sha,
        "width": w,
        "height": h,
        "boxes": boxes,
        "group": group,
    }
