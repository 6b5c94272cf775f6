"""One configured dataset read into records: the format named or detected, then the reader of
that format (``coco``, ``swift``, ``formats``, or ``labels`` for classification datasets)."""

from __future__ import annotations

import os
from pathlib import Path

from ..coords import DEFAULT_SPEC, ResizeSpec
from ..errors import InputError
from ..jsonio import read_json
from . import synth
from .coco import read_coco
from .formats import read_labelme, read_voc
from .labels import read_classify
from .records import ReadResult, Rules
from .swift import read_swift
from .yolo import NAME_FILES as YOLO_NAME_FILES
from .yolo import read_yolo, yolo_names

FORMATS = ("coco", "labelme", "yolo", "voc", "swift")
SWIFT_SUFFIX = ".jsonl"  # what format auto reads as ms-swift JSONL


def detect_format(path: Path) -> str:
    """The format of an annotation path, or InputError when it is ambiguous."""
    path = Path(path)
    if path.is_dir():
        if any((path / n).is_file() for n in YOLO_NAME_FILES):
            return "yolo"
        # the folder is read recursively, so its subfolders (json/, images/) tell the format
        kinds = {os.path.splitext(n)[1].lower() for _, _, names in os.walk(path) for n in names}
        if any(p.is_dir() and p.name.lower() == "annotations" for p in path.iterdir()):
            return "voc"  # the VOC devkit's and CVAT's layout: Annotations/ and JPEGImages/
        if ".xml" in kinds and ".json" not in kinds:
            return "voc"
        if ".json" in kinds and ".xml" not in kinds:
            return "labelme"
        raise InputError(f"{path}: cannot tell the format of this folder; set `format`")
    suffix = path.suffix.lower()
    if suffix == SWIFT_SUFFIX:
        return "swift"
    if suffix == ".xml":
        return "voc"
    if suffix in (".yaml", ".yml") or path.name in YOLO_NAME_FILES:
        return "yolo"
    if suffix == ".json":
        data = read_json(path)
        if isinstance(data, dict) and "shapes" in data:
            return "labelme"
        if isinstance(data, dict) and "images" in data:
            return "coco"
    raise InputError(f"{path}: cannot tell the annotation format; set `format`")


def uses_resize(ds: dict) -> bool:
    """Whether reading a dataset depends on the smart-resize bounds: only ms-swift JSONL does
    (its boxes may be in Qwen2.5-VL's resized pixels). Reads no file."""
    if ds.get("task", "detect") != "detect":
        return False
    fmt = ds.get("format") or "auto"
    if fmt == "auto":
        return Path(ds["annotations"]).suffix.lower() == SWIFT_SUFFIX
    return fmt == "swift"


def read_dataset(ds: dict, rules: Rules, spec: ResizeSpec | None = None) -> ReadResult:
    """Read one configured dataset (keys as in config/schema.yaml). ``spec``: the smart-resize
    bounds, which only a swift dataset needs (:func:`uses_resize`)."""
    if ds.get("task") == "classify":
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
        spec = spec or DEFAULT_SPEC
        return read_swift(path, rules, ds.get("coords", "qwen3_vl"), images, spec, group)
    if fmt == "labelme":
        return read_labelme(path, rules, images)
    if fmt == "yolo":
        return read_yolo(path, rules, images)
    if fmt == "voc":
        return read_voc(path, rules, images)
    raise InputError(f"{path}: unknown format {fmt!r}; expected one of {FORMATS} or auto")


def box_classes(path: Path, fmt: str) -> tuple[str, ...]:
    """The class list an annotation file declares, for a command line without ``--classes``:
    COCO categories by id, YOLO names, else the synthetic drawings' classes."""
    if fmt == "coco":
        data = read_json(path)
        return tuple(c["name"] for c in sorted(data.get("categories", []), key=lambda c: c["id"]))
    if fmt == "yolo":
        return tuple(yolo_names(path)[0])
    return synth.CLASSES
