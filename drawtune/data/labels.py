"""Classification datasets: one label per drawing (drawing type, discipline, sheet size...).

A classification record is a detection record (``records``) without boxes and with a label::

    {"source": file, "record": id, "image": path, "sha256": hex, "width": w, "height": h,
     "boxes": [], "label": str, "group": str|None}

Two input forms (``format`` of the dataset):

``folders``
    ``annotations`` is a folder whose immediate subfolders are the classes; every image anywhere
    below a class folder is one drawing of that class. A multi-page PDF or TIFF gives one record
    per page (``cls/set.pdf#2``), as if each page were listed with its ``#page`` reference.
``csv``
    ``annotations`` is a UTF-8 CSV file (a BOM is accepted) with a header; the ``image`` and
    ``label`` columns (names set by ``columns``) give the image path, relative to ``images``
    (default: the CSV's folder, optionally with a ``#page``) and its class. ``group_key`` names
    an optional column whose value keeps related sheets in one split.

As with the detection readers, every record read is either returned or rejected with
``{"file", "record", "field", "reason"}``: ``len(records) + len(rejects)`` is the number of
files (folders) or non-blank data rows (csv) read. Labels of ``drop`` are rejected too (field
``label``), so that the count holds and the summary shows what was left out.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

from ..errors import InputError
from .images import IMAGE_SUFFIXES
from .records import (
    ReadResult,
    Reject,
    Rules,
    display_path,
    image_facts,
    make_record,
    prefetch_images,
    resolve_image,
)

FORMATS = ("folders", "csv")
DEFAULT_COLUMNS = {"image": "image", "label": "label"}
_MULTI_PAGE = (".pdf", ".tif", ".tiff")
_BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------------- reading
def _format(ds: dict) -> str:
    fmt = ds.get("format") or "auto"
    path = Path(ds["annotations"])
    if fmt == "auto":
        fmt = "folders" if path.is_dir() else "csv" if path.suffix.lower() == ".csv" else fmt
    if fmt not in FORMATS:
        raise InputError(f"{path}: unknown classification format {fmt!r}; expected {FORMATS}")
    if fmt == "folders" and not path.is_dir():
        raise InputError(f"{path}: no such folder (format folders: one subfolder per class)")
    if fmt == "csv" and not path.is_file():
        raise InputError(f"{path}: no such file (format csv)")
    return fmt


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _csv_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (names stripped) and ``(line number, fields)`` of each data row."""
    src = display_path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{src}: cannot read ({e.strerror})") from None
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{src}: not UTF-8 text ({e.reason} at byte {e.start + skip}); save it as UTF-8 CSV"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            rows.append((start, row))
    except csv.Error as e:
        raise InputError(f"{src}: malformed CSV at line {reader.line_num}: {e}") from None
    if not rows or not any(v.strip() for v in rows[0][1]):
        raise InputError(f"{src}: no header row (expected columns such as image,label)")
    header = [v.strip() for v in rows[0][1]]
    return header, rows[1:]


def _columns(ds: dict, header: list[str], src: str) -> dict[str, int]:
    """Positions of the image, label and (if configured) group columns."""
    names = {**DEFAULT_COLUMNS, **(ds.get("columns") or {})}
    if ds.get("group_key"):
        names["group"] = ds["group_key"]
    names = {k: v for k, v in names.items() if k in ("image", "label", "group")}
    missing = [f"{n!r} (the {role})" for role, n in names.items() if n not in header]
    if missing:
        raise InputError(
            f"{src}: no column {', '.join(missing)}; the header has "
            f"{', '.join(repr(h) for h in header)}; set `columns` (or `group_key`) in the "
            "dataset config"
        )
    for name in names.values():
        if header.count(name) > 1:
            raise InputError(f"{src}: column {name!r} appears {header.count(name)} times")
    return {role: header.index(n) for role, n in names.items()}


def _label_names(ds: dict) -> dict[str, str]:
    return {**DEFAULT_COLUMNS, **(ds.get("columns") or {})}


def _derive_classes(ds: dict, fmt: str, aliases: dict, drop) -> list[str]:
    path = Path(ds["annotations"])
    if fmt == "folders":
        raw = _class_dirs(path)
    else:
        header, rows = _csv_table(path)
        i = _columns(ds, header, display_path(path))["label"]
        raw = [row[i].strip() for _, row in rows if i < len(row) and row[i].strip()]
    return sorted({aliases.get(v, v) for v in raw} - set(drop))


def classes_of(ds: dict) -> list[str]:
    """The dataset's closed class list: ``classes`` when configured, else the class folders or
    the distinct CSV labels, after ``aliases`` and without ``drop``, sorted. Reads no image."""
    fmt = _format(ds)  # a missing path is an InputError even when the classes are given
    if ds.get("classes"):
        return [str(c) for c in ds["classes"]]
    return _derive_classes(ds, fmt, ds.get("aliases") or {}, ds.get("drop") or ())


def _check_label(raw: str, classes, aliases: dict, drop, src, rec, fld) -> str:
    label = aliases.get(raw, raw)
    if label in drop:
        raise Reject(src, rec, fld, f"label {label!r} is in drop")
    if label not in classes:
        raise Reject(src, rec, fld, f"unknown label {label!r} (classes: {', '.join(classes)})")
    return label


def _labelled(src, rec, facts, label: str, group) -> dict:
    r = make_record(src, rec, facts, [], group)
    group = r.pop("group")
    r["label"] = label
    r["group"] = group
    return r


def read_classify(ds: dict, rules: Rules) -> ReadResult:
    """Read one classification dataset (module docstring). ``rules`` gives the image settings
    (pixel limit, PDF dpi, normalised and cache folders, workers); the classes are the
    dataset's ``classes`` or ``classes_of(ds)``, never ``rules.classes`` (box labels).
    ``aliases`` and ``drop`` of the dataset and of ``rules`` both apply."""
    fmt = _format(ds)
    aliases = {**(rules.aliases or {}), **(ds.get("aliases") or {})}
    drop = tuple(rules.drop) + tuple(ds.get("drop") or ())
    if ds.get("classes"):
        classes = [str(c) for c in ds["classes"]]
    else:
        classes = _derive_classes(ds, fmt, aliases, drop)
    if fmt == "folders":
        return _read_folders(Path(ds["annotations"]), rules, classes, aliases, drop)
    return _read_csv(ds, rules, classes, aliases, drop)


def _page_count(path: Path, max_pixels: int) -> int:
    """Pages of a PDF or TIFF; 1 when they cannot be counted (decoding then reports why)."""
    try:
        if path.suffix.lower() == ".pdf":
            import pypdfium2 as pdfium

            pdf = pdfium.PdfDocument(str(path))
            try:
                return max(1, len(pdf))
            finally:
                pdf.close()
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = max_pixels  # as images._open_raster sets it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return max(1, getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - the image check names the problem
        return 1


def _walk(root: Path):
    """Relative paths of the non-hidden files below ``root``, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            if not name.startswith("."):
                yield rel / name


def _read_folders(root: Path, rules: Rules, classes, aliases, drop) -> ReadResult:
    src = display_path(root)
    out = ReadResult()
    todo = []  # (record id, image reference, label)
    for rel in _walk(root):
        rec = rel.as_posix()
        try:
            if len(rel.parts) == 1:
                raise Reject(src, rec, "image", "file outside a class folder")
            suffix = rel.suffix.lower()
            if suffix not in IMAGE_SUFFIXES:
                why = f"suffix {suffix}" if suffix else "no suffix"
                raise Reject(src, rec, "image", f"not an image ({why})")
            label = _check_label(rel.parts[0], classes, aliases, drop, src, rec, "label")
        except Reject as r:
            out.rejects.append(r.row())
            continue
        pages = _page_count(root / rel, rules.max_image_pixels) if suffix in _MULTI_PAGE else 1
        if pages == 1:
            todo.append((rec, rec, label))
        else:
            todo.extend((f"{rec}#{k}", f"{rec}#{k}", label) for k in range(1, pages + 1))
    prefetch_images(root, [ref for _, ref, _ in todo], rules)
    for rec, ref, label in todo:
        try:
            image = resolve_image(root, ref, src, rec, "image")
            facts = image_facts(image, src, rec, "image", rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(_labelled(src, rec, facts, label, None))
    return out


def _read_csv(ds: dict, rules: Rules, classes, aliases, drop) -> ReadResult:
    path = Path(ds["annotations"])
    src = display_path(path)
    root = Path(ds["images"]) if ds.get("images") else path.parent
    header, rows = _csv_table(path)
    col = _columns(ds, header, src)
    names = _label_names(ds)
    img_f, lab_f = names["image"], names["label"]

    def field(row, role):
        i = col[role]
        return row[i].strip() if i < len(row) else ""

    prefetch_images(root, [field(row, "image") for _, row in rows], rules)
    out = ReadResult()
    seen: dict[str, tuple[str, str]] = {}
    for line, row in rows:
        if not any(v.strip() for v in row):
            continue  # a blank line is no record
        rec = f"line {line}"
        try:
            extra = row[len(header) :]
            if any(v.strip() for v in extra):
                raise Reject(
                    src,
                    rec,
                    "",
                    f"row has {len(row)} fields but the header has {len(header)} "
                    "(an unquoted comma in a path?)",
                )
            name = field(row, "image")
            if not name:
                raise Reject(src, rec, img_f, "empty image path")
            raw = field(row, "label")
            if not raw:
                raise Reject(src, rec, lab_f, "empty label")
            label = _check_label(raw, classes, aliases, drop, src, rec, lab_f)
            image = resolve_image(root, name, src, rec, img_f)
            facts = image_facts(image, src, rec, img_f, rules)
            if image in seen:
                first, first_label = seen[image]
                clash = "" if first_label == label else f" with label {first_label!r}"
                raise Reject(src, rec, img_f, f"image already listed at {first}{clash}")
            seen[image] = (rec, label)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        group = (field(row, "group") or None) if "group" in col else None
        out.records.append(_labelled(src, rec, facts, label, group))
    return out
