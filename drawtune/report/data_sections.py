"""The sections of the data page (see :mod:`drawtune.report.sections` for how to add one):
drawings and boxes per class and split, box sizes relative to the sheet, classification
datasets per class and split, and every rejected record counted by reason."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from ..data.split import SPLITS
from . import charts
from .html import Col, esc, figure, fmt, pct, table
from .sections import DataContext, Section


def _dataset_of(ctx: DataContext) -> dict[str, str]:
    """Image path -> the dataset it was validated in."""
    return {r["image"]: d for d, rows in sorted(ctx.records.items()) for r in rows}


def detection_splits(ctx: DataContext) -> Section | None:
    if not any(ctx.splits.values()):
        return None
    cols = [
        Col("split"),
        Col("drawings", num=True),
        Col("without a box", "drawings", True),
        Col("boxes", num=True),
        Col("boxes per drawing", "mean", True),
    ]
    rows, tot = [], Counter()
    for s in SPLITS:
        recs = ctx.splits.get(s, [])
        n = len(recs)
        empty = sum(not r["boxes"] for r in recs)
        boxes = sum(len(r["boxes"]) for r in recs)
        tot.update({"n": n, "empty": empty, "boxes": boxes})
        rows.append([s, fmt(n), fmt(empty), fmt(boxes), fmt(boxes / n if n else 0.0, 1)])
    foot = [
        "all",
        fmt(tot["n"]),
        fmt(tot["empty"]),
        fmt(tot["boxes"]),
        fmt(tot["boxes"] / tot["n"] if tot["n"] else 0.0, 1),
    ]
    html = table(cols, rows, "Detection data after validation and the split", foot=foot)
    where = _dataset_of(ctx)
    per = defaultdict(Counter)
    for s in SPLITS:
        for r in ctx.splits.get(s, []):
            per[where.get(r["image"], "?")][s] += 1
    if per:
        cols = [Col("dataset"), *(Col(s, "drawings", True) for s in SPLITS)]
        rows = [[d, *(fmt(per[d][s]) for s in SPLITS)] for d in sorted(per)]
        html += table(cols, rows, "Drawings per dataset and split")
    return Section("Drawings and boxes per split", html, "splits")


def detection_classes(ctx: DataContext) -> Section | None:
    if not any(ctx.splits.values()):
        return None
    boxes = {s: Counter() for s in SPLITS}
    drawings = {s: Counter() for s in SPLITS}
    for s in SPLITS:
        for r in ctx.splits.get(s, []):
            labels = [b["label"] for b in r["boxes"]]
            boxes[s].update(labels)
            drawings[s].update(set(labels))
    classes = list(ctx.classes) or sorted({c for s in boxes.values() for c in s})
    cols = [
        Col("class"),
        *(Col(s, "boxes", True) for s in SPLITS),
        Col("all", "boxes", True),
        *(Col(s, "drawings with it", True) for s in SPLITS),
    ]
    rows = [
        [
            c,
            *(fmt(boxes[s][c]) for s in SPLITS),
            fmt(sum(boxes[s][c] for s in SPLITS)),
            *(fmt(drawings[s][c]) for s in SPLITS),
        ]
        for c in classes
    ]
    html = table(cols, rows, "Boxes and drawings per class and split")
    missing = [c for c in classes if not boxes["test"][c]]
    if missing:
        html += (
            f"<p class='note'>No test box of {esc(', '.join(missing))}: their AP is 0 and "
            "says nothing about the model.</p>"
        )
    png = charts.counts_by_split({s: dict(boxes[s]) for s in SPLITS}, "boxes", classes)
    html += figure(png, "Boxes per class, stacked by split")
    return Section("Boxes per class and split", html, "classes")


def box_sizes(ctx: DataContext) -> Section | None:
    sizes: dict[str, list[tuple[float, float]]] = defaultdict(list)
    smallest: dict[str, float] = {}
    for s in SPLITS:
        for r in ctx.splits.get(s, []):
            for b in r["boxes"]:
                x1, y1, x2, y2 = b["bbox"]
                sizes[b["label"]].append(((x2 - x1) / r["width"], (y2 - y1) / r["height"]))
                side = min(x2 - x1, y2 - y1)
                smallest[b["label"]] = min(smallest.get(b["label"], side), side)
    if not sizes:
        return None
    cols = [
        Col("class"),
        Col("boxes", num=True),
        Col("box side / sheet side", "5th percentile", True),
        Col("box side / sheet side", "median", True),
        Col("box side / sheet side", "95th percentile", True),
        Col("shortest box side", "pixels", True),
    ]
    rows = []
    for c in sorted(sizes):
        rel = np.sqrt([w * h for w, h in sizes[c]])
        p5, p50, p95 = (float(np.percentile(rel, q)) for q in (5, 50, 95))
        rows.append([c, fmt(len(rel)), pct(p5), pct(p50), pct(p95), fmt(smallest[c], 0)])
    html = table(
        cols,
        rows,
        "Box side relative to the sheet's (the square root of the box's "
        "share of the sheet's area), every split",
    )
    html += figure(charts.box_sizes(dict(sizes)), "Box sizes relative to the sheet, per class")
    return Section("Box sizes relative to the sheet", html, "box-sizes")


def classification_data(ctx: DataContext) -> Section | None:
    if not ctx.classify:
        return None
    html = ""
    for d, splits in sorted(ctx.classify.items()):
        counts = {s: Counter(r["label"] for r in splits.get(s, [])) for s in SPLITS}
        classes = sorted({c for v in counts.values() for c in v})
        cols = [
            Col("class"),
            *(Col(s, "drawings", True) for s in SPLITS),
            Col("all", "drawings", True),
        ]
        rows = [
            [c, *(fmt(counts[s][c]) for s in SPLITS), fmt(sum(counts[s][c] for s in SPLITS))]
            for c in classes
        ]
        foot = [
            "all",
            *(fmt(sum(counts[s].values())) for s in SPLITS),
            fmt(sum(sum(v.values()) for v in counts.values())),
        ]
        html += f"<h3>{esc(d)}</h3>" + table(cols, rows, "Drawings per class and split", foot=foot)
    return Section("Classification data", html, "classification")


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LIST = re.compile(r"\[[^\[\]]*\]")
_PAREN = re.compile(r"\([^()]*\)")
_PATH = re.compile(
    r"(?<![\w])[\w.~-]*(?:[/\\][\w.@#~-]+)+"  # a path
    r"|(?<![\w])[\w.-]+\.(?:png|jpe?g|tiff?|pdf|bmp|webp|json|jsonl|xml|txt|csv|yaml)\b",  # a file
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w])-?\d+(?:\.\d+)?(?:x\d+)?(?![\w])")


def reason_kind(reason: str) -> str:
    """A reject's reason with its particulars (quoted values, boxes, paths, numbers) left out,
    so that rejects of one kind are counted together: ``image file … does not exist``."""
    s = _QUOTED.sub("…", reason)
    s = _LIST.sub("[…]", s)
    while _PAREN.search(s):  # innermost first: "(images[3] (id 4))" is one "(…)"
        s = _PAREN.sub("\0", s)
    s = s.replace("\0", "(…)")
    s = _PATH.sub("…", s)
    return _NUMBER.sub("N", s).strip()


def rejects(ctx: DataContext) -> Section:
    cols = [
        Col("dataset"),
        Col("read", "records", True),
        Col("kept", "records", True),
        Col("rejected", "records", True),
        Col("rejected", "% of read", True),
    ]
    rows = [
        [
            s["dataset"],
            fmt(s["read"]),
            fmt(s["converted"]),
            fmt(s["rejected"]),
            pct(s["rejected"] / s["read"] if s["read"] else 0.0),
        ]
        for s in sorted(ctx.summaries, key=lambda s: s["dataset"])
    ]
    html = table(cols, rows, "Every record read is kept or rejected with its reason")
    kinds: dict[tuple, list[dict]] = defaultdict(list)
    for d, rs in sorted(ctx.rejects.items()):
        for r in rs:
            kinds[(d, "validation", r["field"], reason_kind(r["reason"]))].append(r)
    for r in ctx.split_rejects:
        kinds[("all", "split", r["field"], reason_kind(r["reason"]))].append(r)
    if not kinds:
        return Section("Rejected records", html + "<p>No record was rejected.</p>", "rejects")
    cols = [
        Col("dataset"),
        Col("step"),
        Col("field"),
        Col("reason"),
        Col("count", "records", True),
        Col("first example", "file: record"),
    ]
    order = sorted(kinds.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    rows = [
        [d, step, fld or "–", kind, fmt(len(rs)), f"{rs[0]['file']}: {rs[0]['record']}"]
        for (d, step, fld, kind), rs in order
    ]
    html += table(
        cols,
        rows,
        "Rejects by reason (particulars such as paths and values left out; "
        "every reject with its full reason is in the rejects.jsonl files)",
    )
    return Section("Rejected records", html, "rejects")
