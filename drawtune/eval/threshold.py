"""Operating points of scored boxes: precision, recall and F1 at IoU 0.5 when only the boxes
scored at or above a threshold are kept, the threshold that maximises F1, and how well the
scores match the observed precision (a reliability diagram).

Each function takes the boxes as ``scores`` and ``tp`` (a true positive at IoU 0.5, from
COCO's greedy matching by score: dropping the boxes below a threshold changes no match of the
boxes kept) and ``n_true``, the number of true boxes."""

from __future__ import annotations


def _r(v: float) -> float:
    return round(float(v), 6)


def operating_point(scores: list[float], tp: list[bool], n_true: int, threshold) -> dict:
    """Precision, recall and F1 of the boxes scored at or above ``threshold`` (None: all)."""
    kept = [hit for s, hit in zip(scores, tp, strict=True) if threshold is None or s >= threshold]
    hits = sum(kept)
    precision = hits / len(kept) if kept else 0.0
    recall = hits / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": _r(precision),
        "recall": _r(recall),
        "f1": _r(f1),
        "n_kept": len(kept),
        "n_boxes": len(scores),
    }


def best_threshold(scores: list[float], tp: list[bool], n_true: int) -> float | None:
    """The score threshold (one of the boxes' scores; boxes at or above it are kept) with the
    highest F1; among equal F1 the highest threshold, which keeps the fewest boxes. None when
    no box is a true positive (no threshold does better than another)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    best, best_f1 = None, 0.0
    hits = 0
    for rank, i in enumerate(order, start=1):
        hits += tp[i]
        last_of_score = rank == len(order) or scores[order[rank]] != scores[i]
        if not last_of_score or not n_true:
            continue
        precision, recall = hits / rank, hits / n_true
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        if f1 > best_f1:
            best, best_f1 = scores[i], f1
    return best


def reliability(scores: list[float], tp: list[bool], bins: int = 10) -> dict:
    """Boxes binned by score (``bins`` equal bins over [0, 1]): per bin the number of boxes,
    their mean score and the fraction that are true positives; ``ece``, the expected
    calibration error (the bins' gaps between mean score and precision, weighted by size)."""
    rows = []
    gap = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [
            (s, hit)
            for s, hit in zip(scores, tp, strict=True)
            if lo <= s < hi or (b == bins - 1 and s == hi)
        ]
        if not inside:
            rows.append({"lo": _r(lo), "hi": _r(hi), "n": 0, "mean_score": None, "precision": None})
            continue
        mean = sum(s for s, _ in inside) / len(inside)
        precision = sum(hit for _, hit in inside) / len(inside)
        gap += len(inside) * abs(mean - precision)
        rows.append(
            {"lo": _r(lo), "hi": _r(hi), "n": len(inside), "mean_score": _r(mean),
             "precision": _r(precision)}
        )  # fmt: skip
    return {"bins": rows, "ece": _r(gap / len(scores)) if scores else None}
