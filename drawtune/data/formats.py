"""Readers for LabelMe and Pascal VOC (YOLO: ``yolo``). Each returns the same ``ReadResult`` as
``coco.read_coco``: every record is either a validated record or a reject naming file, record
and field; every value used is checked for its type first (``records.expect``).
"""

from __future__ import annotations

import base64
import binascii
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import InputError
from ..jsonio import read_json
from .images import ImageFacts, store_embedded
from .records import (
    ReadResult,
    Reject,
    Rules,
    check_boxes,
    display_path,
    expect,
    image_facts,
    leaves_dataset,
    make_record,
    resolve_image,
)


def annotation_files(path: Path, suffix: str, out: ReadResult) -> list[Path]:
    """The annotation files of a folder (recursively) or the one file given. A broken symlink
    is returned (reading it is rejected with the reason); a symlink that leads outside the
    folder is rejected here."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise InputError(f"{path}: no such file or folder")
        return [path]
    found = []
    for p in sorted(path.rglob("*")):
        if p.suffix.lower() != suffix or p.is_dir():
            continue
        if leaves_dataset(p, path) and os.path.exists(p):
            out.rejects.append(
                Reject(
                    display_path(p),
                    p.relative_to(path).as_posix(),
                    "",
                    f"a symlink to {os.path.realpath(p)}, outside the dataset folder {path}",
                ).row()
            )
            continue
        found.append(p)
    return found


def declared_size(data: dict, keys, facts: ImageFacts, src, rec):
    for key, actual in zip(keys, (facts.width, facts.height), strict=True):
        v = data.get(key)
        if v is not None and expect(v, "number", src, rec, key) != actual:
            raise Reject(src, rec, key, f"declared {key} {v} but the image has {actual}")


# --------------------------------------------------------------------------------- LabelMe
def _labelme_image(data: dict, f: Path, root: Path, base: Path, rules: Rules, src, rec):
    """The drawing of a LabelMe file: ``imagePath`` (Windows backslashes read as folders) when
    that file is there, else the embedded ``imageData``, as LabelMe itself does."""
    ref = data.get("imagePath")
    if isinstance(ref, str):
        ref = ref.replace("\\", "/")
    embedded = data.get("imageData")
    try:
        image = resolve_image(root, ref, src, rec, "imagePath", base=base)
    except Reject:
        if embedded is None:
            raise
        expect(embedded, "string", src, rec, "imageData")
        try:
            raw = base64.b64decode(embedded, validate=True)
        except (binascii.Error, ValueError):
            raise Reject(src, rec, "imageData", "imageData is not base64") from None
        if rules.normalised_dir is None:
            raise Reject(src, rec, "imageData", "no folder was given for embedded images") from None
        image = str(store_embedded(raw, rules.normalised_dir))
        return image_facts(image, src, rec, "imageData", rules)
    return image_facts(image, src, rec, "imagePath", rules)


def _labelme_boxes(shapes: list, src, rec) -> list:
    raw = []
    for k, sh in enumerate(shapes):
        fld = f"shapes[{k}]"
        expect(sh, "object", src, rec, fld)
        kind = sh.get("shape_type") or "polygon"
        if kind != "rectangle":
            raise Reject(
                src,
                rec,
                fld + ".shape_type",
                f"{kind!r:.40} shapes are not boxes; draw rectangles or drop label "
                f"{sh.get('label')!r:.40}",
            )
        pts = expect(sh.get("points"), "list", src, rec, fld + ".points")
        if len(pts) not in (2, 4) or not all(isinstance(p, list) and len(p) == 2 for p in pts):
            raise Reject(
                src, rec, fld + ".points", f"rectangle needs two (or four) points: {pts!r:.60}"
            )
        for j, p in enumerate(pts):
            for c, v in enumerate(p):
                expect(v, "number", src, rec, f"{fld}.points[{j}][{c}]")
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]  # four: the corners, some tools
        raw.append((fld, sh.get("label"), [min(xs), min(ys), max(xs), max(ys)]))
    return raw


def read_labelme(path: Path, rules: Rules, images_root: Path | None = None) -> ReadResult:
    """LabelMe JSON (one file per image; a folder of them or one file). Rectangles become boxes;
    any other shape rejects the record (a polygon is not guessed into a box). ``imagePath``
    resolves against the JSON's folder and must stay inside the annotations folder (or
    against and inside ``images_root``)."""
    out = ReadResult()
    path = Path(path)
    for f in annotation_files(path, ".json", out):
        src = display_path(f)
        rec = "image"
        try:
            try:
                data = read_json(f)
            except InputError as e:
                raise Reject(src, rec, "", str(e).removeprefix(f"{f}: ")) from None
            if not isinstance(data, dict) or "shapes" not in data:
                raise Reject(src, rec, "shapes", "not a LabelMe file (no 'shapes' list)")
            shapes = expect(data["shapes"], "list", src, rec, "shapes")
            if images_root:
                root = base = Path(images_root)
            else:
                root, base = (path if path.is_dir() else f.parent), f.parent
            facts = _labelme_image(data, f, root, base, rules, src, rec)
            declared_size(data, ("imageWidth", "imageHeight"), facts, src, rec)
            boxes = check_boxes(_labelme_boxes(shapes, src, rec), facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, None))
    return out


# ------------------------------------------------------------------------------------- VOC
def voc_annotations(path: Path) -> Path:
    """Where the XML files are: the ``Annotations`` folder of a VOC dataset folder (as the
    VOC devkit and CVAT write it), else the path given."""
    path = Path(path)
    if path.is_dir():
        for p in sorted(path.iterdir()):
            if p.is_dir() and p.name.lower() == "annotations":
                return p
    return path


def _voc_root(f: Path, name, images_root) -> Path:
    """The folder ``filename`` resolves against: ``images_root``, else the XML's folder, else
    ``JPEGImages`` beside the ``Annotations`` folder (the standard layout)."""
    if images_root:
        return Path(images_root)
    if not isinstance(name, str) or not name or (f.parent / name).exists():
        return f.parent
    top = f.parent
    while top.name.lower() != "annotations" and top != top.parent:
        top = top.parent
    for p in sorted(top.parent.iterdir()) if top.name.lower() == "annotations" else ():
        if p.is_dir() and p.name.lower() == "jpegimages":
            return p
    return f.parent


def _voc_boxes(tree, src, rec) -> list:
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
                raise Reject(src, rec, f"{fld}.bndbox.{key}", f"{t!r} is not a number") from None
        raw.append((fld, (obj.findtext("name") or "").strip(), vals))
    return raw


def read_voc(path: Path, rules: Rules, images_root: Path | None = None) -> ReadResult:
    """Pascal VOC XML (one file per image; a folder of them, a VOC dataset folder with
    ``Annotations/``, or one file). ``filename`` resolves against ``images_root``, the XML's
    folder or ``JPEGImages/``; boxes are taken as given (xmin..xmax pixels)."""
    out = ReadResult()
    for f in annotation_files(voc_annotations(path), ".xml", out):
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
            except OSError as e:
                raise Reject(src, rec, "", f"cannot read ({e.strerror})") from None
            if tree.tag != "annotation":
                raise Reject(
                    src, rec, "", f"not a Pascal VOC annotation (root element <{tree.tag}>)"
                )
            name = (tree.findtext("filename") or "").strip()
            ref = resolve_image(_voc_root(f, name, images_root), name, src, rec, "filename")
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
                declared_size(declared, ("width", "height"), facts, src, rec)
            boxes = check_boxes(_voc_boxes(tree, src, rec), facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, None))
    return out
