"""A tiled model's answers back on the sheets (issue 18): every view's boxes mapped to the
sheet's pixels, duplicates across tile borders merged with sahi's postprocess, and the merged
sheets scored against the full-sheet truth like an untiled model's.

Merge methods (``tiling.merge.method``), all from :mod:`sahi.postprocess.combine`:

``greedy_nmm`` (default)
    greedy non-maximum merging: the best box absorbs every box that matches it, and becomes
    their union (two halves of a box cut by a tile border become the whole box again)
``nms``
    non-maximum suppression: the best box is kept as it is, its matches dropped

A match is an overlap of at least ``threshold`` by ``metric``: ``ios`` (intersection over the
smaller box: a part of a box inside it matches) or ``iou``. sahi's transitive ``nmm`` is left
out: in sahi 0.12.8 it merges nothing among boxes of equal score, which every box of a model
without confidences has. ``per_class`` merges boxes of one
label only. A box's score is the one its tokens give (``drawtune.eval.confidence``: the
view's answer with its ``logprobs``, scored by the configured box score) or 1.0 without them,
and the best box is the highest score, then sahi's fixed order; a merged box keeps the
probabilities of the best box it absorbed (``p``), so that any box score can be measured on
the merged sheets (rule calibrate_scores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..coords import ResizeSpec, from_model, model_frame
from ..data.tiling import TilingError, View, view_of
from .confidence import DEFAULT_VARIANT, BoxProbs, answer_probs, token_entries
from .match import match_results, row_image
from .metrics import coco_metrics
from .parse import parse_answer
from .score import Answers, Box

# sahi's postprocess classes (sahi.postprocess.combine), imported where a merge runs: sahi (and
# its OpenCV) is not needed on GPU nodes that only train or predict untiled
METHODS = {"greedy_nmm": "GreedyNMMPostprocess", "nms": "NMSPostprocess"}
MERGE_KEYS = ("method", "metric", "threshold", "per_class")


def _sahi():
    from sahi.postprocess import combine
    from sahi.postprocess.backends import set_postprocess_backend
    from sahi.prediction import ObjectPrediction

    # the same merge on every machine: sahi would pick torchvision on a GPU, numba when installed
    set_postprocess_backend("numpy")
    return combine, ObjectPrediction


@dataclass(frozen=True)
class TileMerge:
    """How boxes of one sheet's views are merged (``experiments.<name>.tiling.merge``)."""

    method: str = "greedy_nmm"
    metric: str = "ios"
    threshold: float = 0.5
    per_class: bool = True

    @classmethod
    def of(cls, block: dict | None) -> TileMerge:
        block = block or {}
        merge = cls(**{k: block[k] for k in MERGE_KEYS if k in block})
        if merge.method not in METHODS:
            raise TilingError(f"tiling.merge.method {merge.method!r}: one of {', '.join(METHODS)}")
        if merge.metric not in ("ios", "iou"):
            raise TilingError(f"tiling.merge.metric {merge.metric!r}: ios or iou")
        return merge

    def as_dict(self) -> dict:
        return asdict(self)


def box_score(item) -> float:
    """A parsed box's confidence: its ``score`` (a dict key, an attribute or a third tuple
    element, as the parser gives it) or 1.0 for a model without confidences."""
    if isinstance(item, dict):
        value = item.get("score")
    elif isinstance(item, tuple | list) and len(item) > 2:
        value = item[2]
    else:
        value = getattr(item, "score", None)
    return 1.0 if value is None else float(value)


def view_answer(
    text, view: View, family: str, spec: ResizeSpec, sheet_size, logprobs=None, variant=None
):
    """One view's answer: ``(parsed, [{"label", "bbox", "score", "p"}])`` with the boxes in the
    sheet's pixels, clamped to the sheet; boxes with no area left are dropped. With the
    answer's ``logprobs`` each box is scored by ``variant`` and keeps its probabilities ``p``
    (None without usable log-probabilities)."""
    parsed = parse_answer(text)
    probs = answer_probs(parsed, text, logprobs) if parsed.boxes and logprobs else None
    sw, sh = sheet_size
    out = []
    for k, item in enumerate(parsed.boxes):
        label, box = item[0], item[1]
        px = view.to_sheet(from_model(box, family, view.width, view.height, spec))
        px = [
            min(max(px[0], 0.0), sw),
            min(max(px[1], 0.0), sh),
            min(max(px[2], 0.0), sw),
            min(max(px[3], 0.0), sh),
        ]
        if px[2] - px[0] > 0 and px[3] - px[1] > 0:
            p = probs[k] if probs else None
            score = p.score(variant or DEFAULT_VARIANT) if p else box_score(item)
            out.append({"label": label, "bbox": px, "score": score, "p": p})
    return parsed, out


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _probs_of(box: dict, candidates: list[dict]):
    """The probabilities of the candidate a merged box took its score from: the same label
    and score, the most overlap (a merged box's score is its best candidate's)."""
    same = [
        c
        for c in candidates
        if c["label"] == box["label"] and round(float(c["score"]), 6) == box["score"]
    ]
    best = max(same, key=lambda c: _overlap(c["bbox"], box["bbox"]), default=None)
    return best.get("p") if best else None


def merge_boxes(boxes: list[dict], merge: TileMerge) -> list[dict]:
    """Duplicates among one sheet's boxes merged (sahi); the result in reading order
    (top-to-bottom, left-to-right), coordinates to 0.01 pixel."""
    if not boxes:
        return []
    combine, ObjectPrediction = _sahi()
    labels = sorted({b["label"] for b in boxes})
    ids = {label: i for i, label in enumerate(labels)}
    preds = [
        ObjectPrediction(
            bbox=list(b["bbox"]),
            category_id=ids[b["label"]],
            category_name=b["label"],
            score=b["score"],
        )
        for b in boxes
    ]
    post = getattr(combine, METHODS[merge.method])(
        match_threshold=merge.threshold,
        match_metric=merge.metric.upper(),
        class_agnostic=not merge.per_class,
    )
    out = [
        {
            "label": labels[p.category.id],
            "bbox": [round(float(v), 2) for v in p.bbox.to_xyxy()],
            "score": round(float(p.score.value), 6),
        }
        for p in post(preds)
    ]
    if any(b.get("p") is not None for b in boxes):
        for b in out:
            p = _probs_of(b, boxes)
            b["p"] = p.as_dict() if p is not None else None
    return sorted(
        out, key=lambda b: (b["bbox"][1], b["bbox"][0], b["bbox"][3], b["bbox"][2], b["label"])
    )


def sheet_predictions(
    rows: list[dict],
    manifest: list[dict],
    family: str,
    spec: ResizeSpec,
    merge: TileMerge,
    variant: str | None = None,
):
    """ms-swift infer rows of a tiled split (one per view) -> one row per sheet, in the
    manifest's order: ``images`` (the sheet), its size, the merged ``boxes`` in sheet pixels
    (scored by ``variant`` from the rows' ``logprobs``, with their probabilities ``p``),
    ``parsed`` (every view's answer could be read), ``salvaged``, ``n_views``,
    ``n_unparseable_views``, ``n_view_boxes`` (before the merge), ``logprobs`` (a view's answer
    had them), ``n_unscored_views`` (views with boxes but no usable log-probabilities) and each
    view's ``response``. A view without its result row counts as unparseable."""
    by_image = {}
    for r in rows:
        by_image.setdefault(str(row_image(r)), r)
    # rows that name no view of the manifest are taken in order (one per view, as ms-swift
    # answers them)
    in_order = len(rows) == len(manifest) and not any(m["image"] in by_image for m in manifest)
    sheets: dict[str, dict] = {}
    for k, m in enumerate(manifest):
        view = view_of(m)
        expect = model_frame(family, view.width, view.height, spec)
        if (m["frame_width"], m["frame_height"]) != tuple(expect):
            raise TilingError(
                f"{m['image']}: manifest frame {[m['frame_width'], m['frame_height']]} differs "
                f"from {list(expect)} recomputed with the current resize settings"
            )
        sheet = sheets.setdefault(
            m["sheet"],
            {
                "images": [m["sheet"]],
                "width": m["sheet_width"],
                "height": m["sheet_height"],
                "parsed": True,
                "salvaged": False,
                "n_views": 0,
                "n_unparseable_views": 0,
                "logprobs": False,
                "n_unscored_views": 0,
                "candidates": [],
                "views": [],
            },
        )
        row = rows[k] if in_order else by_image.get(m["image"])
        text = row.get("response") if row else None
        logprobs = row.get("logprobs") if row else None
        size = (m["sheet_width"], m["sheet_height"])
        parsed, boxes = view_answer(text, view, family, spec, size, logprobs, variant)
        sheet["logprobs"] = sheet["logprobs"] or token_entries(logprobs) is not None
        sheet["n_unscored_views"] += any(b["p"] is None for b in boxes)
        sheet["n_views"] += 1
        sheet["n_unparseable_views"] += 0 if parsed.ok else 1
        sheet["parsed"] = sheet["parsed"] and parsed.ok
        sheet["salvaged"] = sheet["salvaged"] or parsed.salvaged
        sheet["candidates"] += boxes
        sheet["views"].append(
            {"image": m["image"], "view": m["view"], "offset": m["offset"], "response": text}
        )
    out = []
    for sheet in sheets.values():
        candidates = sheet.pop("candidates")
        sheet["n_view_boxes"] = len(candidates)
        sheet["boxes"] = merge_boxes(candidates, merge)
        out.append(sheet)
    return out


def merged_answer(
    texts: list,
    views: list[dict],
    family: str,
    spec: ResizeSpec,
    merge: TileMerge,
    logprobs: list | None = None,
    variant: str | None = None,
):
    """One drawing's answers, one per view (``views``: its manifest rows,
    :func:`drawtune.data.tiling.image_views`), merged on the drawing: ``{"parsed", "boxes",
    "n_views", "scored"}`` with the boxes in its pixels; with each view's ``logprobs`` the
    boxes carry their ``score`` by ``variant`` and ``p`` (``scored``: every box has them)."""
    logprobs = logprobs or [None] * len(texts)
    rows = [
        {"images": [v["image"]], "response": t, "logprobs": lp}
        for v, t, lp in zip(views, texts, logprobs, strict=True)
    ]
    (sheet,) = sheet_predictions(rows, views, family, spec, merge, variant)
    scored = sheet["logprobs"] and not sheet["n_unscored_views"]
    boxes = [
        {
            "label": b["label"],
            "bbox": b["bbox"],
            **({"score": b["score"], "p": b["p"]} if scored else {}),
        }
        for b in sheet["boxes"]
    ]
    return {
        "parsed": sheet["parsed"],
        "boxes": boxes,
        "n_views": sheet["n_views"],
        "scored": scored,
    }


def sheet_answers(sheets: list[dict], truth: dict) -> Answers:
    """Merged sheets read as :class:`drawtune.eval.score.Answers` (the boxes' probabilities
    from their ``p``), for the scoring and calibration of an untiled model's answers."""
    preds, details, n_bad, unscored = [], [], 0, []
    for img, sheet in match_results(sheets, truth):
        boxes = sheet["boxes"] if sheet else []
        parsed = bool(sheet and sheet["parsed"])
        n_bad += 0 if parsed else 1
        if sheet and sheet.get("n_unscored_views"):
            unscored.append(img["file_name"])
        items = []
        for b in boxes:
            p = b.get("p")
            probs = BoxProbs(**{**p, "tokens": tuple(p["tokens"])}) if p else None
            preds.append(
                {"image_id": img["id"], "label": b["label"], "bbox": b["bbox"], "probs": probs}
            )
            items.append(Box(b["label"], b["bbox"], probs))
        details.append(
            {
                "image": img["file_name"],
                "matched": sheet is not None,
                "parsed": parsed,
                "salvaged": bool(sheet and sheet["salvaged"]),
                "logprobs": bool(sheet and sheet.get("logprobs")),
                "boxes": items,
                "response": "\n".join(v["response"] or "" for v in sheet["views"])
                if sheet
                else None,
                "n_views": sheet["n_views"] if sheet else 0,
                "n_unparseable_views": sheet["n_unparseable_views"] if sheet else 0,
            }
        )
    return Answers(preds, details, n_bad, unscored)


def score_sheets(sheets: list[dict], truth: dict) -> tuple[dict, list[dict]]:
    """Merged sheets against the full-sheet COCO truth: the metrics of
    :func:`drawtune.eval.metrics.coco_metrics` (a sheet with an unreadable view counts as
    unparseable) and one detail per truth image, as the untiled score writes them."""
    preds, details, n_bad = [], [], 0
    for img, sheet in match_results(sheets, truth):
        boxes = sheet["boxes"] if sheet else []
        parsed = bool(sheet and sheet["parsed"])
        n_bad += 0 if parsed else 1
        preds += [{"image_id": img["id"], **b} for b in boxes]
        details.append(
            {
                "image": img["file_name"],
                "matched": sheet is not None,
                "parsed": parsed,
                "salvaged": bool(sheet and sheet["salvaged"]),
                "boxes": [{"label": b["label"], "bbox": b["bbox"]} for b in boxes],
                "response": "\n".join(v["response"] or "" for v in sheet["views"])
                if sheet
                else None,
                "n_views": sheet["n_views"] if sheet else 0,
                "n_unparseable_views": sheet["n_unparseable_views"] if sheet else 0,
            }
        )
    return coco_metrics(truth, preds, n_unparseable=n_bad), details
