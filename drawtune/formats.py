"""Readers for the annotation formats beyond COCO and ms-swift JSONL: LabelMe, YOLO, Pascal
VOC, and format detection. Each returns the same ``ReadResult`` as ``records.read_coco``: every
record is either a validated record or a reject naming file, record and field.
"""

from __future__ import annotations

import hashlib
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from .records import (
    ImageFacts,
    InputError,
    ReadResult,
    Reject,
    Rules,
    _boxes,
    _load_json,
    _record,
    _resolve_image,
    _text,
    display_path,
    image_facts,
    prefetch_images,
    read_coco,
    read_swift,
)

FORMATS = ("coco", "labelme", "yolo", "voc", "swift")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pdf", ".bmp", ".webp")


# ------------------------------------------------------------------------------- detection
def detect_format(path: Path) -> str:
    """The format of an annotation path, or InputError when it is ambiguous."""
    path = Path(path)
    if path.is_dir():
        if (path / "data.yaml").is_file() or (path / "classes.txt").is_file():
            return "yolo"
        kinds = {p.suffix.lower() for p in path.iterdir() if p.is_file()}
        if ".xml" in kinds and ".json" not in kinds:
            return "voc"
        if ".json" in kinds and ".xml" not in kinds:
            return "labelme"
        raise InputError(f"{path}: cannot tell the format of this folder; set `format`")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return "swift"
    if suffix == ".xml":
        return "voc"
    if suffix in (".yaml", ".yml") or path.name == "classes.txt":
        return "yolo"
    if suffix == ".json":
        data = _load_json(path)
        if isinstance(data, dict) and "shapes" in data:
            return "labelme"
        if isinstance(data, dict) and "images" in data:
            return "coco"
    raise InputError(f"{path}: cannot tell the annotation format; set `format`")


ANNOTATION_SUFFIXES = (".json", ".jsonl", ".xml", ".txt", ".yaml", ".yml")


def dataset_files(ds: dict, workdir: Path | None = None) -> list[str]:
    """Every file a dataset may read (annotations and images under its folders), so that the
    workflow reruns validation when any of them changes, even an image edited in place. A folder
    that holds the workflow itself contributes only the annotation path."""
    ann = Path(ds["annotations"])
    roots = {ann if ann.is_dir() else ann.parent}
    if ds.get("images"):
        roots.add(Path(ds["images"]))
    here = (workdir or Path.cwd()).resolve()
    files = {str(ann)} if ann.is_file() else set()
    suffixes = IMAGE_SUFFIXES + ANNOTATION_SUFFIXES
    for root in roots:
        r = root.resolve()
        if not r.is_dir() or r == here or r in here.parents:
            continue
        for dirpath, _, names in os.walk(r):
            rel = Path(dirpath).relative_to(r)
            files.update(
                str(root / rel / n) for n in names if os.path.splitext(n)[1].lower() in suffixes
            )
    return sorted(files)


def dataset_stamp(ds: dict, workdir: Path | None = None) -> str:
    """A fingerprint of every file a dataset may read (name, size, modification time): a
    Snakemake param, so that an image added or edited in place reruns validation without making
    10,000 images inputs of the rule (which costs seconds on every no-op run)."""
    h = hashlib.sha256()
    for f in dataset_files(ds, workdir):
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_dataset(ds: dict, rules: Rules, spec) -> ReadResult:
    """Read one configured dataset (keys as in config/schema.yaml)."""
    if ds.get("task") == "classify":
        from .classify import read_classify

        return read_classify(ds, rules)
    path = Path(ds["annotations"])
    fmt = ds.get("format", "auto")
    if fmt == "auto":
        fmt = detect_format(path)
    images = ds.get("images")
    group = ds.get("group_key")
    if fmt == "coco":
        return read_coco(path, rules, images, group)
    if fmt == "swift":
        return read_swift(path, rules, ds.get("coords", "qwen3_vl"), images, spec, group)
    if fmt == "labelme":
        return read_labelme(path, rules, images)
    if fmt == "yolo":
        return read_yolo(path, rules, images)
    if fmt == "voc":
        return read_voc(path, rules, images)
    raise InputError(f"{path}: unknown format {fmt!r}; expected one of {FORMATS} or auto")


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
                data = _load_json(f)
            except InputError as e:
                raise Reject(src, rec, "", str(e).removeprefix(f"{f}: ")) from None
            if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
                raise Reject(src, rec, "shapes", "not a LabelMe file (no 'shapes' list)")
            root = Path(images_root) if images_root else f.parent
            ref = _resolve_image(root, data.get("imagePath"), src, rec, "imagePath")
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
            boxes = _boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(_record(src, rec, facts, boxes, None))
    return out


def _declared_size(data: dict, keys, facts: ImageFacts, src, rec):
    for key, actual in zip(keys, (facts.width, facts.height), strict=True):
        v = data.get(key)
        if v is not None and v != actual:
            raise Reject(src, rec, key, f"declared {key} {v} but the image has {actual}")


# ------------------------------------------------------------------------------------ YOLO
def _yolo_names(path: Path) -> tuple[list[str], Path]:
    """Class names and the dataset root from data.yaml / classes.txt (file or folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / "data.yaml" if (path / "data.yaml").is_file() else path / "classes.txt"
    src = display_path(path)
    text = _text(path, src)
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
    names, root = _yolo_names(path)
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
            lines = _text(label_file, src).splitlines() if label_file.is_file() else []
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
            boxes = _boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(_record(src, rec, facts, boxes, None))
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
            ref = _resolve_image(root, name, src, rec, "filename")
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
            boxes = _boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(_record(src, rec, facts, boxes, None))
    return out
