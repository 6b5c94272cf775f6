"""COCO detection metrics with pycocotools.

A VLM answer carries no confidence, so every predicted box gets score 1.0, as Qwen's own
ODinW evaluation does; boxes of one image keep the order the model wrote them in
(pycocotools sorts by score with a stable sort). AP therefore measures a single operating
point per image; precision/recall/F1 at IoU 0.5 are reported beside it because they are the
numbers a user of a score-less detector reads first. Predicted labels outside the class list
cannot enter COCO's per-class AP; they count as false positives in ``precision50``.
"""

from __future__ import annotations

import contextlib
import io

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


def coco_metrics(truth: dict, predictions: list[dict], n_unparseable: int = 0) -> dict:
    """Metrics for ``predictions`` against the COCO ``truth`` dict.

    ``predictions``: dicts with ``image_id``, ``label`` and ``bbox`` as ``[x1, y1, x2, y2]`` in
    original pixels. Returns a dict with exactly :data:`METRIC_KEYS`.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = sorted(truth["categories"], key=lambda c: c["id"])
    cat_id = {c["name"]: c["id"] for c in cats}
    n_true = {c["name"]: 0 for c in cats}
    for a in truth["annotations"]:
        n_true[next(c["name"] for c in cats if c["id"] == a["category_id"])] += 1
    n_true_total = sum(n_true.values())

    dets, n_unknown = [], 0
    for p in predictions:
        if p["label"] not in cat_id:
            n_unknown += 1
            continue
        x1, y1, x2, y2 = p["bbox"]
        dets.append(
            {
                "image_id": p["image_id"],
                "category_id": cat_id[p["label"]],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": 1.0,
            }
        )

    per_class = {c["name"]: {"ap": 0.0, "ap50": 0.0, "n_true": n_true[c["name"]]} for c in cats}
    stats = [0.0, 0.0, 0.0]
    tp = 0
    if dets and n_true_total:
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
            dt = gt.loadRes(dets)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [max(float(s), 0.0) for s in ev.stats[:3]]
        prec = ev.eval["precision"]  # [T, R, K, A, M]
        for k, c in enumerate(ev.params.catIds):
            name = next(x["name"] for x in cats if x["id"] == c)
            p_all = prec[:, :, k, 0, -1]
            p50 = prec[0, :, k, 0, -1]
            per_class[name]["ap"] = _r(np.mean(p_all[p_all > -1])) if (p_all > -1).any() else 0.0
            per_class[name]["ap50"] = _r(np.mean(p50[p50 > -1])) if (p50 > -1).any() else 0.0
        all_range = ev.params.areaRng[0]
        for e in ev.evalImgs:
            if e is None or e["aRng"] != all_range:
                continue
            matched = np.asarray(e["dtMatches"])[0] > 0
            ignored = np.asarray(e["dtIgnore"])[0].astype(bool)
            tp += int((matched & ~ignored).sum())
    n_pred = len(dets) + n_unknown
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true_total if n_true_total else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "map": _r(stats[0]),
        "map50": _r(stats[1]),
        "map75": _r(stats[2]),
        "per_class": per_class,
        "precision50": _r(precision),
        "recall50": _r(recall),
        "f1_50": _r(f1),
        "n_images": len(truth["images"]),
        "n_unparseable": int(n_unparseable),
    }
