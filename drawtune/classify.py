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
import json
import os
import re
import warnings
from pathlib import Path

from .formats import IMAGE_SUFFIXES
from .records import (
    InputError,
    ReadResult,
    Reject,
    Rules,
    _record,
    _resolve_image,
    display_path,
    image_facts,
    prefetch_images,
)

FORMATS = ("folders", "csv")
INVALID = "(invalid)"  # the confusion-matrix column of answers that name no class
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
    r = _record(src, rec, facts, [], group)
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
            image = _resolve_image(root, ref, src, rec, "image")
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
            image = _resolve_image(root, name, src, rec, img_f)
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


# ------------------------------------------------------------------------------ conversion
def default_prompt(classes: list[str]) -> str:
    return f"Classify this engineering drawing. Answer with exactly one of: {', '.join(classes)}."


def swift_row(record: dict, prompt: str) -> dict:
    """ms-swift training row: the image, the prompt, and the class name as the answer."""
    return {
        "messages": [
            {"role": "user", "content": "<image>" + prompt},
            {"role": "assistant", "content": record["label"]},
        ],
        "images": [record["image"]],
    }


# --------------------------------------------------------------------------------- parsing
_PREFIX = re.compile(r"^(?:label|class|category|answer)\s*[:=]\s*", re.I)
_JSON_KEYS = ("label", "class", "category", "answer")
_QUOTES = "\"'`“”‘’"


def _unfence(text: str) -> str:
    """The content of a ``` code fence (a language tag on its first line dropped)."""
    t = text.strip()
    if not t.startswith("```"):
        return t
    t = t[3:]
    if t.endswith("```"):
        t = t[:-3]
    first, nl, rest = t.partition("\n")
    if nl and re.fullmatch(r"[\w-]*", first.strip()):
        t = rest
    return t.strip()


def _clean(text: str) -> str:
    t = _unfence(text)
    for _ in range(3):
        t = _PREFIX.sub("", t).strip().rstrip(".").strip().strip(_QUOTES).strip()
    return t


def _from_json(text: str) -> str | None:
    try:
        v = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, dict):
        v = next((v[k] for k in _JSON_KEYS if isinstance(v.get(k), str)), None)
    return v if isinstance(v, str) else None


def _exact(text: str, classes) -> str | None:
    if text in classes:
        return text
    hits = {c for c in classes if c.casefold() == text.casefold()}
    return hits.pop() if len(hits) == 1 else None


def parse_class(text: str | None, classes: list[str]) -> str | None:
    """The class an answer names, or None. Accepts the bare name in any case, in quotes or a
    code fence, with a trailing period or a ``Label:`` prefix, JSON (``"x"``,
    ``{"label": "x"}``), and, failing those, a sentence that names exactly one class as a
    whole word (``The drawing is portrait.``); None when it names none or several."""
    if not isinstance(text, str) or not classes:
        return None
    body = _unfence(text)
    for cand in (_from_json(body), _clean(body)):
        if cand is not None:
            hit = _exact(_clean(cand), classes)
            if hit is not None:
                return hit
    # free text: the classes named as whole words, a name inside a longer named one not counted
    spans = []
    for c in classes:
        pat = r"(?<![\w-])" + re.escape(c) + r"(?![\w-])"
        spans += [(m.start(), m.end(), c) for m in re.finditer(pat, body, re.I)]
    named = {
        c
        for s, e, c in spans
        if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)
    }
    return named.pop() if len(named) == 1 else None


# --------------------------------------------------------------------------------- scoring
def classification_metrics(truth: list[str], predicted: list[str | None], classes: list[str]):
    """Accuracy, macro-F1 over ``classes``, per-class precision/recall/F1/support and the
    confusion matrix, by ``sklearn.metrics``. An answer that names no class (None, or a name
    outside ``classes``) is wrong and counted in ``n_invalid``. ``confusion.matrix`` has one
    row per class (truth, in ``classes`` order) and one column per ``confusion.labels``
    (predicted: the classes, then ``(invalid)``)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    classes = list(classes)
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truth labels but {len(predicted)} predictions")
    if INVALID in classes:
        raise ValueError(f"{INVALID!r} cannot be a class name")
    unknown = sorted(set(truth) - set(classes))
    if unknown:
        raise ValueError(f"truth labels {unknown} are not in the classes {classes}")
    pred = [p if p in classes else INVALID for p in predicted]
    n = len(truth)
    n_invalid = pred.count(INVALID)
    labels = classes + [INVALID]
    r4 = lambda v: round(float(v), 4)  # noqa: E731
    if n:
        p, r, f, s = precision_recall_fscore_support(
            truth, pred, labels=classes, average=None, zero_division=0
        )
        accuracy = r4(accuracy_score(truth, pred))
        macro_f1 = r4(f1_score(truth, pred, labels=classes, average="macro", zero_division=0))
        matrix = confusion_matrix(truth, pred, labels=labels)[: len(classes)].tolist()
    else:
        p = r = f = s = [0] * len(classes)
        accuracy = macro_f1 = None
        matrix = [[0] * len(labels) for _ in classes]
    return {
        "n": n,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "n_invalid": n_invalid,
        "invalid_rate": r4(n_invalid / n) if n else None,
        "per_class": {
            c: {"precision": r4(p[k]), "recall": r4(r[k]), "f1": r4(f[k]), "support": int(s[k])}
            for k, c in enumerate(classes)
        },
        "confusion": {"labels": labels, "matrix": [[int(v) for v in row] for row in matrix]},
    }


def score_classification(rows: list[dict], records: list[dict], classes: list[str]):
    """Pair test records with ms-swift infer rows (by image path, then by unique file name),
    parse the answers and compute the metrics; a record without a row counts as invalid.
    Returns ``(metrics, details)``, one detail per record in order."""
    from .stages import match_results

    truth = {"images": [{"file_name": r["image"]} for r in records]}
    details = []
    for rec, (_, row) in zip(records, match_results(rows, truth), strict=True):
        text = row.get("response") if row else None
        predicted = parse_class(text, classes)
        details.append(
            {
                "image": rec["image"],
                "label": rec["label"],
                "predicted": predicted,
                "parsed": predicted is not None,
                "matched": row is not None,
                "response": text,
            }
        )
    metrics = classification_metrics(
        [d["label"] for d in details], [d["predicted"] for d in details], classes
    )
    return metrics, details


def confusion_chart(metrics: dict, out) -> None:
    """The confusion matrix as a PNG: truth on y, predicted on x, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = metrics["confusion"]
    cols = conf["labels"]
    rows = [c for c in cols if c != INVALID][: len(conf["matrix"])]
    m = conf["matrix"]
    side = 1.6 + 0.55 * len(cols)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    im = ax.imshow(m or [[0] * len(cols)], cmap="Blues", vmin=0, aspect="auto")
    top = max((v for row in m for v in row), default=0)
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if top and v > top / 2 else "black",
            )
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    acc = metrics.get("accuracy")
    title = f"n={metrics.get('n', 0)}"
    if acc is not None:
        title += f", accuracy {acc:.3f}, macro-F1 {metrics.get('macro_f1', 0):.3f}"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


# ------------------------------------------------------------------------------- synthetic
SYNTH_CLASSES = ("landscape", "portrait")


def synth_label(seed: int, index: int) -> str:
    """Orientation of synthetic sheet ``index``: each pair of sheets (2k, 2k+1) holds one
    landscape and one portrait sheet, in an order drawn from ``(seed, k)``; so both classes
    are present from two sheets on and sheet ``i`` depends only on ``(seed, i)``."""
    import random

    first = random.Random(f"drawtune-classify-{seed}-{index // 2}").random() < 0.5
    return SYNTH_CLASSES[(index % 2) ^ int(first)]


def synth_classify(n: int, seed: int, width: int, images_dir, csv_path) -> None:
    """Write ``n`` synthetic sheets (``drawtune.synth.draw_sheet``) as PNGs into ``images_dir``
    and ``csv_path`` (header ``image,label``, paths relative to the CSV's folder), labelled by
    sheet orientation (``synth_label``): landscape sheets are ``width`` x ``width/sqrt(2)``,
    portrait ones the transpose, both with the title block bottom right. Same inputs give
    the same bytes."""
    from .synth import draw_sheet

    images_dir, csv_path = Path(images_dir), Path(csv_path)
    base = os.path.abspath(csv_path.parent)
    where = os.path.abspath(images_dir)
    if os.path.commonpath([base, where]) != base:
        raise ValueError(f"{images_dir} must lie inside the CSV's folder {csv_path.parent}")
    images_dir.mkdir(parents=True, exist_ok=True)
    short = int(round(width / 2**0.5))
    rows = [("image", "label")]
    for i in range(n):
        label = synth_label(seed, i)
        if label == "portrait":
            img, _ = draw_sheet(seed, i, short, height=width)
        else:
            img, _ = draw_sheet(seed, i, width)
        name = f"sheet_{seed:04d}_{i:05d}.png"
        img.save(images_dir / name, optimize=False)
        rel = Path(os.path.relpath(images_dir / name, csv_path.parent)).as_posix()
        rows.append((rel, label))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(buf.getvalue(), encoding="utf-8", newline="")
