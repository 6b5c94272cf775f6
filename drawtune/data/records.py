"""The record: one image with its boxes in original pixels, and how readers check it.

A *record* is::

    {"source": file, "record": id, "image": path, "sha256": hex, "width": w, "height": h,
     "boxes": [{"label": str, "bbox": [x1, y1, x2, y2]}], "group": str|None}

plus ``"original"`` (the file and page read) when ``image`` is a converted copy, and
``"fingerprint"`` (``data.leakage``) once validation has fingerprinted it.

Every record read is either returned or rejected with ``{"file", "record", "field", "reason"}``.
A record with any bad box is rejected whole: a drawing with some objects dropped would teach
the model to miss them. The readers of each format (``coco``, ``swift``, ``formats``,
``labels``) build records with the helpers here.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import InputError
from .images import ImageFacts, ImageProblem, inspect, prefetch, split_page

log = logging.getLogger("drawtune")


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
    on_decode: Callable | None = None  # sees each decoded image (fingerprints: data.leakage)


def display_path(p: Path) -> str:
    """Path relative to the working directory when inside it, else absolute: stable across
    clones, and what ms-swift resolves from the workflow's working directory."""
    p = Path(os.path.abspath(p))
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


_WINDOWS_ABSOLUTE = re.compile(r"^([A-Za-z]:)?[\\/]")  # C:\x, C:/x, \x, \\server\x

_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def json_type(value) -> str:
    """What a JSON value is, in words (``a string``, ``null``...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def expect(value, kind: str, src, rec, fld):
    """``value`` if it has the JSON type ``kind`` (``object``, ``list``, ``string``, ``number``,
    ``id``: a non-boolean integer or a string), else a Reject naming the field and both types.
    Every reader checks each value it uses this way before using it."""
    ok = {
        "object": isinstance(value, dict),
        "list": isinstance(value, list),
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "id": isinstance(value, int | str) and not isinstance(value, bool),
    }[kind]
    if not ok:
        want = "an integer or a string" if kind == "id" else f"a{'n' * (kind[0] in 'ao')} {kind}"
        raise Reject(src, rec, fld, f"expected {want}, got {json_type(value)} {value!r:.60}")
    return value


def leaves_dataset(path: Path, root: Path) -> bool:
    """Whether ``path`` (inside ``root`` as written) is, or goes through, a symlink to a place
    outside ``root``: such a file is not part of the dataset."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return os.path.commonpath([real, real_root]) != real_root


def resolve_image(
    root: Path, ref: str, src: str, rec: str, fld: str, base: Path | None = None
) -> str:
    """The image reference made absolute (``path`` or ``path#page``) against ``base`` (default
    ``root``), checked to stay inside ``root`` (also through symlinks) and to exist."""
    if ref is not None and not isinstance(ref, str):
        expect(ref, "string", src, rec, fld)
    if not ref:
        raise Reject(src, rec, fld, "missing image path")
    try:
        name, page = split_page(ref)
    except ImageProblem as e:
        raise Reject(src, rec, fld, str(e)) from None
    if os.path.isabs(name) or _WINDOWS_ABSOLUTE.match(name):
        raise Reject(src, rec, fld, f"absolute image path {name!r} is not allowed")
    base, start = os.path.abspath(root), os.path.abspath(base or root)
    if "\\" in name and not os.path.lexists(os.path.join(start, name)):
        name = name.replace("\\", "/")  # written on Windows: backslashes separate folders
    path = Path(os.path.abspath(os.path.join(start, name)))
    if os.path.commonpath([str(path), base]) != base:
        raise Reject(src, rec, fld, f"image path {name!r} escapes the dataset root {root}")
    if os.path.lexists(path) and leaves_dataset(path, Path(base)):
        raise Reject(
            src,
            rec,
            fld,
            f"image path {name!r} is a symlink to {os.path.realpath(path)}, outside the "
            f"dataset root {root}",
        )
    if not path.is_file():
        raise Reject(src, rec, fld, f"image file {path} does not exist")
    return f"{path}#{page}" if page > 1 else str(path)


def image_facts(ref: str, src: str, rec: str, fld: str, rules: Rules) -> ImageFacts:
    try:
        facts = inspect(
            ref,
            rules.normalised_dir,
            dpi=rules.pdf_dpi,
            max_pixels=rules.max_image_pixels,
            cache_dir=rules.cache_dir,
            on_decode=rules.on_decode,
        )
    except ImageProblem as e:
        raise Reject(src, rec, fld, str(e)) from None
    return replace(facts, source=str(ref))


def _progress(msg: str) -> None:
    """Progress of image decoding: into the log and, for the terminal, onto stderr."""
    log.info(msg)
    print(f"validate: {msg}", file=sys.stderr, flush=True)


def prefetch_images(root: Path, names, rules: Rules) -> None:
    """Decode the images of a file in parallel before the reader walks it in order."""
    refs = []
    for name in names:
        try:
            refs.append(resolve_image(root, name, "", "", ""))
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
        on_decode=rules.on_decode,
    )


def box_scale(facts: ImageFacts, rules: Rules) -> float:
    """Factor from annotation units to pixels of the image the model sees."""
    return facts.scale if rules.box_units == "pdf_points" else 1.0


def check_box(box, label, w, h, src, rec, fld, rules: Rules, scale: float = 1.0):
    """One box in source units -> ``{"label", "bbox"}`` in pixels, or None for a dropped label."""
    expect(label, "string", src, rec, fld + ".label")
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


def check_boxes(raw, facts: ImageFacts, src, rec, rules: Rules) -> list[dict]:
    """``raw``: (field, label, [x1, y1, x2, y2] in source units) for one image."""
    scale = box_scale(facts, rules)
    out = []
    for fld, label, box in raw:
        b = check_box(box, label, facts.width, facts.height, src, rec, fld, rules, scale)
        if b is not None:
            out.append(b)
    return out


def read_text(path: Path, src: str) -> str:
    """A UTF-8 text file (a byte-order mark, as Windows tools write it, is dropped)."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{src}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{src}: cannot read ({e.strerror})") from None


def make_record(src, rec, facts: ImageFacts, boxes, group):
    out = {
        "source": src,
        "record": rec,
        "image": display_path(Path(facts.path)),
        "sha256": facts.sha256,
        "width": facts.width,
        "height": facts.height,
        "boxes": boxes,
        "group": group,
    }
    if facts.normalised and facts.source:  # a converted copy: the file it was read from
        name, page = split_page(facts.source)
        out["original"] = display_path(Path(name)) + (f"#{page}" if page > 1 else "")
    return out
