"""Readers for the annotation formats beyond COCO and ms-swift JSONL: LabelMe, YOLO and Pascal
VOC. Each returns the same ``ReadResult`` as ``coco.read_coco``: every record is either a
validated record or a reject naming file, record and field.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from ..errors import InputError
from ..jsonio import read_json
from .images import IMAGE_SUFFIXES, ImageFacts
from .records import (
    ReadResult,
    Reject,
    Rules,
    check_boxes,
    display_path,
    image_facts,
    make_record,
    prefetch_images,
    read_text,
    resolve_image,
)


def _files(path: Path, suffix: str) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    return [path]


# --------------------------------------------------------------------------------- LabelMe
def read_labelme(path: Path, rules: Rules, images_root: Path | None = None) -> ReadResult:
    """LabelMe JSON (one file per image; a folder of them or one file). Rectangles become boxes;
    any other shape rejects the record (a polygon is not guessed into a box)."""
    out = ReadResult()
    for f in _files(Path(path), ".json"):
        src = display_path(f)
        rec = "image"
        try:
            try:
                data = read_json(f)
            except InputError as e:
                raise Reject(src, rec, "", str(e).removeprefix(f"{f}: ")) from None
            if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
                raise Reject(src, rec, "shapes", "not a LabelMe file (no 'shapes' list)")
            root = Path(images_root) if images_root else f.parent
            ref = resolve_image(root, data.get("imagePath"), src, rec, "imagePath")
            facts = image_facts(ref, src, rec, "imagePath", rules)
            _declared_size(data, ("imageWidth", "imageHeight"), facts, src, rec)
            raw = []
            for k, sh in enumerate(data["shapes"]):
                fld = f"shapes[{k}]"
                if not isinstance(sh, dict):
                    raise Reject(src, rec, fld, "shape is not an object")
                kind = sh.get("shape_type") or "polygon"
                if kind != "rectangle":
                    raise Reject(
                        src,
                        rec,
                        fld + ".shape_type",
                        f"{kind} shapes are not boxes; draw rectangles or drop label "
                        f"{sh.get('label')!r}",
                    )
                pts = sh.get("points")
                if (
                    not isinstance(pts, list)
                    or len(pts) != 2
                    or not all(isinstance(p, list) and len(p) == 2 for p in pts)
                ):
                    raise Reject(src, rec, fld + ".points", f"rectangle needs two points: {pts!r}")
                (xa, ya), (xb, yb) = pts
                try:
                    box = [min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)]
                except TypeError:
                    box = [xa, ya, xb, yb]  # the box check names the bad value
                raw.append((fld, sh.get("label"), box))
            boxes = check_boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, None))
    return out


def _declared_size(data: dict, keys, facts: ImageFacts, src, rec):
    for key, actual in zip(keys, (facts.width, facts.height), strict=True):
        v = data.get(key)
        if v is not None and v != actual:
            raise Reject(src, rec, key, f"declared {key} {v} but the image has {actual}")


# ------------------------------------------------------------------------------------ YOLO
def yolo_names(path: Path) -> tuple[list[str], Path]:
    """Class names and the dataset root from data.yaml / classes.txt (file or folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "data.yaml" if (path / "data.yaml").is_file() else path / "classes.txt"
    src = display_path(path)
    text = read_text(path, src)
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise InputError(f"{src}: malformed YAML{where}") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
        if not isinstance(names, list) or not names:
            raise InputError(f"{src}: no 'names' list of classes")
        root = path.parent / data.get("path", ".") if isinstance(data.get("path"), str) else None
        return [str(n) for n in names], (root or path.parent)
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise InputError(f"{src}: no class names")
    return names, path.parent


def read_yolo(path: Path, rules: Rules, images_root: Path | None = None) -> ReadResult:
    """YOLO txt: ``images/**/x.png`` with ``labels/**/x.txt`` (``class cx cy w h``, normalised
    to 0-1) and class names in data.yaml or classes.txt. An image without a label file, or with
    an empty one, is a negative sample."""
    names, root = yolo_names(path)
    img_dir = Path(images_root) if images_root else root / "images"
    if not img_dir.is_dir():
        raise InputError(f"{display_path(img_dir)}: no images folder")
    files = sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    prefetch_images(img_dir, [str(p.relative_to(img_dir)) for p in files], rules)
    out = ReadResult()
    for img in files:
        rel = img.relative_to(img_dir)
        label_file = root / "labels" / rel.with_suffix(".txt")
        src = display_path(label_file) if label_file.is_file() else display_path(img)
        rec = str(rel)
        try:
            facts = image_facts(str(img), src, rec, "image", rules)
            raw = []
            lines = read_text(label_file, src).splitlines() if label_file.is_file() else []
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                fld = f"line {n}"
                parts = line.split()
                if len(parts) != 5:
                    raise Reject(src, rec, fld, f"expected 'class cx cy w h', got {line!r}")
                try:
                    cls = int(parts[0])
                    cx, cy, w, h = (float(v) for v in parts[1:])
                except ValueError:
                    raise Reject(src, rec, fld, f"non-number in {line!r}") from None
                if not 0 <= cls < len(names):
                    raise Reject(
                        src, rec, fld + ".class", f"class {cls} not in 0..{len(names) - 1}"
                    )
                if not all(math.isfinite(v) for v in (cx, cy, w, h)):
                    raise Reject(src, rec, fld + ".bbox", f"non-finite value in {line!r}")
                W, H = facts.width, facts.height
                box = [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]
                raw.append((fld, names[cls], box))
            boxes = check_boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, None))
    return out


# ------------------------------------------------------------------------------------- VOC
def read_voc(path: Path, rules: Rules, images_root: Path | None = None) -> ReadResult:
    """Pascal VOC XML (one file per image; a folder of them or one file). ``filename`` resolves
    against ``images_root`` or the XML's folder; boxes are taken as given (xmin..xmax pixels)."""
    out = ReadResult()
    for f in _files(Path(path), ".xml"):
        src = display_path(f)
        rec = "annotation"
        try:
            try:
                tree = ET.fromstring(f.read_bytes())
            except ET.ParseError as e:
                line, col = e.position
                raise Reject(
                    src, rec, "", f"malformed XML at line {line} column {col + 1}"
                ) from None
            root = Path(images_root) if images_root else f.parent
            name = (tree.findtext("filename") or "").strip()
            ref = resolve_image(root, name, src, rec, "filename")
            facts = image_facts(ref, src, rec, "filename", rules)
            size = tree.find("size")
            if size is not None:
                declared = {}
                for key in ("width", "height"):
                    t = size.findtext(key)
                    if t is not None and t.strip():
                        try:
                            declared[key] = int(float(t))
                        except ValueError:
                            raise Reject(
                                src, rec, f"size.{key}", f"{t!r} is not a number"
                            ) from None
                _declared_size(declared, ("width", "height"), facts, src, rec)
            raw = []
            for k, obj in enumerate(tree.findall("object")):
                fld = f"object[{k}]"
                bb = obj.find("bndbox")
                if bb is None:
                    raise Reject(src, rec, fld + ".bndbox", "object without bndbox")
                vals = []
                for key in ("xmin", "ymin", "xmax", "ymax"):
                    t = bb.findtext(key)
                    try:
                        vals.append(float(t))
                    except (TypeError, ValueError):
                        raise Reject(
                            src, rec, f"{fld}.bndbox.{key}", f"{t!r} is not a number"
                        ) from None
                raw.append((fld, (obj.findtext("name") or "").strip(), vals))
            boxes = check_boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, None))
    return out
