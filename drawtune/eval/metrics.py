"""COCO detection metrics with pycocotools.

Each prediction may carry a ``score`` (drawtune.eval.confidence: from the answer's token
log-probabilities); without one it is scored 1.0, as Qwen's own ODinW evaluation does, and the
boxes of one image keep the order the model wrote them in (pycocotools sorts by score with a
stable sort): AP then measures a single operating point per image. With scores, COCO AP ranks
the boxes and becomes a real ranked metric. Precision/recall/F1 at IoU 0.5 over all boxes are
reported beside it because they are the numbers a user of a score-less detector reads first.
Predicted labels outside the class list cannot enter COCO's per-class AP; they count as false
positives in ``precision50``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

METRIC_KEYS = (
    "map",
    "map50",
    "map75",
    "per_class",
    "precision50",
    "recall50",
    "f1_50",
    "n_images",
    "n_unparseable",
)


def _r(v: float) -> float:
    return round(float(v), 6)


@dataclass
class Evaluation:
    """One COCOeval of scored predictions: ``ev`` is None when there is nothing to evaluate
    (no prediction with a known label, or no true box)."""

    ev: object | None
    cats: list[dict]
    n_true: dict[str, int]
    n_unknown: int
    # per prediction, in the order given: a true positive at IoU 0.5 (COCO's greedy matching
    # by score, at most 100 detections an image)
    tp50: list[bool]
    scores: list[float]

    @property
    def n_true_total(self) -> int:
        return sum(self.n_true.values())


def evaluate(truth: dict, predictions: list[dict]) -> Evaluation:
    """COCOeval of ``predictions`` (dicts with ``image_id``, ``label``, ``bbox`` as
    ``[x1, y1, x2, y2]`` in original pixels and optionally ``score``) against ``truth``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted(truth["categories"], key=lambda c: c["id"])
    cat_id = {c["name"]: c["id"] for c in cats}
    name_of = {c["id"]: c["name"] for c in cats}
    n_true = {c["name"]: 0 for c in cats}
    for a in truth["annotations"]:
        n_true[name_of[a["category_id"]]] += 1

    dets, index, n_unknown = [], [], 0
    scores = [float(p.get("score", 1.0)) for p in predictions]
    for k, p in enumerate(predictions):
        if p["label"] not in cat_id:
            n_unknown += 1
            continue
        x1, y1, x2, y2 = p["bbox"]
        dets.append(
            {
                "image_id": p["image_id"],
                "category_id": cat_id[p["label"]],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": scores[k],
            }
        )
        index.append(k)
    tp50 = [False] * len(predictions)
    if not (dets and sum(n_true.values())):
        return Evaluation(None, cats, n_true, n_unknown, tp50, scores)
    gt = COCO()
    gt.dataset = {
        "images": truth["images"],
        "annotations": [
            {
                **a,
                "iscrowd": a.get("iscrowd", 0),
                "area": a.get("area", a["bbox"][2] * a["bbox"][3]),
            }
            for a in truth["annotations"]
        ],
        "categories": cats,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets)  # detection ids 1..n in the order of dets
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    all_range = ev.params.areaRng[0]
    for e in ev.evalImgs:
        if e is None or e["aRng"] != all_range:
            continue
        matched = np.asarray(e["dtMatches"])[0] > 0
        ignored = np.asarray(e["dtIgnore"])[0].astype(bool)
        for det_id, hit in zip(e["dtIds"], matched & ~ignored, strict=True):
            tp50[index[det_id - 1]] = bool(hit)
    return Evaluation(ev, cats, n_true, n_unknown, tp50, scores)


def coco_metrics(truth: dict, predictions: list[dict], n_unparseable: int = 0) -> dict:
    """Metrics for ``predictions`` against the COCO ``truth`` dict (see :func:`evaluate`).
    Returns a dict with exactly :data:`METRIC_KEYS`."""
    return metrics_of(evaluate(truth, predictions), len(truth["images"]), n_unparseable)


def metrics_of(e: Evaluation, n_images: int, n_unparseable: int = 0) -> dict:
    per_class = {c["name"]: {"ap": 0.0, "ap50": 0.0, "n_true": e.n_true[c["name"]]} for c in e.cats}
    stats = [0.0, 0.0, 0.0]
    if e.ev is not None:
        ev = e.ev
        stats = [max(float(s), 0.0) for s in ev.stats[:3]]
        prec = ev.eval["precision"]  # [T, R, K, A, M]
        for k, c in enumerate(ev.params.catIds):
            name = next(x["name"] for x in e.cats if x["id"] == c)
            p_all = prec[:, :, k, 0, -1]
            p50 = prec[0, :, k, 0, -1]
            per_class[name]["ap"] = _r(np.mean(p_all[p_all > -1])) if (p_all > -1).any() else 0.0
            per_class[name]["ap50"] = _r(np.mean(p50[p50 > -1])) if (p50 > -1).any() else 0.0
    tp = sum(e.tp50)
    n_pred = len(e.tp50)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / e.n_true_total if e.n_true_total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "map": _r(stats[0]),
        "map50": _r(stats[1]),
        "map75": _r(stats[2]),
        "per_class": per_class,
        "precision50": _r(precision),
        "recall50": _r(recall),
        "f1_50": _r(f1),
        "n_images": n_images,
        "n_unparseable": int(n_unparseable),
    }


def pr_curves(e: Evaluation) -> dict:
    """Per class, COCO's interpolated precision at IoU 0.5 over its 101 recall points, with the
    score at which each recall is reached (None where the class never reaches it)."""
    out = {}
    for c in e.cats:
        out[c["name"]] = {"recall": [], "precision": [], "score": []}
    if e.ev is None:
        return out
    ev = e.ev
    rec = [float(r) for r in ev.params.recThrs]
    for k, c in enumerate(ev.params.catIds):
        name = next(x["name"] for x in e.cats if x["id"] == c)
        p = ev.eval["precision"][0, :, k, 0, -1]
        s = ev.eval["scores"][0, :, k, 0, -1]
        keep = [i for i in range(len(rec)) if p[i] > 0]  # 0: a recall never reached
        out[name] = {
            "recall": [_r(rec[i]) for i in keep],
            "precision": [_r(p[i]) for i in keep],
            "score": [_r(s[i]) if s[i] > -1 else None for i in keep],
        }
    return out


def grouped_ap50(truth: dict, predictions: list[dict], groups: dict[str, list[str]]) -> dict:
    """AP50 of each group of classes scored as one class: the truth's and the predictions'
    labels of a group's members become the group's name (other classes stay as they are) and
    COCOeval runs again. ``{"view kinds": ["view", "section_view", "detail_view"]}`` says how
    well the boxes are found whichever of the three labels they are written with; beside the
    per-class AP it separates finding an object from naming it. ``predictions`` as for
    :func:`evaluate`; a group none of whose classes is in ``truth`` scores 0.0."""
    merged = {member: group for group, members in groups.items() for member in members}
    group_of = {c["id"]: merged.get(c["name"], c["name"]) for c in truth["categories"]}
    names = list(dict.fromkeys(group_of.values()))
    new_id = {n: i + 1 for i, n in enumerate(names)}
    regrouped = {
        "images": truth["images"],
        "categories": [{"id": new_id[n], "name": n} for n in names],
        "annotations": [
            {**a, "category_id": new_id[group_of[a["category_id"]]]} for a in truth["annotations"]
        ],
    }
    preds = [{**p, "label": merged.get(p["label"], p["label"])} for p in predictions]
    per_class = metrics_of(evaluate(regrouped, preds), len(truth["images"]))["per_class"]
    return {g: per_class[g]["ap50"] if g in per_class else 0.0 for g in groups}
