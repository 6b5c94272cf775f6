"""Which predicted box matched which true box at IoU 0.5, with pycocotools' own matching.

Two matchings of the same boxes, each answering one question:

- class-aware (COCO's, ``useCats=1``): a prediction is a true positive only for a true box of
  its own class. It gives per-class precision, recall and F1 at IoU 0.5 (their totals equal
  ``precision50``/``recall50`` of :func:`drawtune.eval.metrics.coco_metrics`) and, per test
  drawing, the misses and false alarms the error gallery ranks by.
- class-agnostic (``useCats=0``): a prediction matches the best-overlapping true box of any
  class. It gives the detection confusion matrix: which class is taken for which, with the
  true boxes nothing matched (misses) and the predictions that matched nothing (false alarms)
  as a column and a row of their own.

Every predicted box scores 1.0 (a VLM gives no confidence), so pycocotools' stable sort keeps
the order the model wrote the boxes in; at most 100 predictions per drawing and class count,
as in COCO (and in ``coco_metrics``).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np

IOU = 0.5
MAX_DETS = 100
MISSED = "missed"  # the confusion matrix's column of true boxes no prediction matched
FALSE_ALARM = "false alarm"  # its row of predictions that matched no true box


@dataclass
class TrueBox:
    label: str
    bbox: list[float]  # x1, y1, x2, y2 in the drawing's pixels
    found: bool = False  # matched by a prediction of its class
    taken_for: str | None = None  # the class of the prediction that overlaps it (any class)


@dataclass
class PredictedBox:
    label: str
    bbox: list[float]
    correct: bool = False  # matched a true box of its class
    truth: str | None = None  # the class of the true box it overlaps (any class), if any


@dataclass
class DrawingMatch:
    """One test drawing: its true and predicted boxes with what each matched."""

    image: str
    width: int
    height: int
    truth: list[TrueBox] = field(default_factory=list)
    predicted: list[PredictedBox] = field(default_factory=list)
    parsed: bool = True
    response: str | None = None

    @property
    def misses(self) -> int:
        return sum(not t.found for t in self.truth)

    @property
    def false_alarms(self) -> int:
        return sum(not p.correct for p in self.predicted)

    @property
    def errors(self) -> int:
        return self.misses + self.false_alarms


@dataclass
class Matching:
    classes: list[str]
    drawings: list[DrawingMatch]
    per_class: dict  # class -> n_true, n_pred, tp, fp, fn, precision, recall, f1
    confusion: dict  # rows (truth + false alarm), cols (predicted + missed), matrix

    def worst(self, n: int) -> list[DrawingMatch]:
        """The ``n`` drawings with the most misses and false alarms (unparsed answers first
        among equals, then by file name); drawings without an error are left out."""
        bad = [d for d in self.drawings if d.errors or not d.parsed]
        return sorted(bad, key=lambda d: (-d.errors, d.parsed, d.image))[:n]


def _evaluate(gt_dataset: dict, dets: list[dict], use_cats: bool):
    """pycocotools' per-image matching at IoU 0.5 (``evalImgs``), or [] without predictions."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not dets or not gt_dataset["annotations"]:
        return []
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dataset
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([IOU])
        ev.params.maxDets = [MAX_DETS]
        ev.params.areaRng = [[0.0, 1e12]]
        ev.params.areaRngLbl = ["all"]
        ev.params.useCats = int(use_cats)
        ev.evaluate()
    return [e for e in ev.evalImgs if e is not None]


def _ratio(a: int, b: int) -> float:
    return round(a / b, 6) if b else 0.0


def match_detections(truth: dict, details: list[dict]) -> Matching:
    """Match each test drawing's predicted boxes (``details`` rows of ``score_detections``:
    ``image``, ``boxes`` in pixels, ``parsed``, ``response``) to its true boxes (the split's
    COCO ``truth``)."""
    cats = sorted(truth["categories"], key=lambda c: c["id"])
    classes = [c["name"] for c in cats]
    cat_name = {c["id"]: c["name"] for c in cats}
    cat_id = {c["name"]: c["id"] for c in cats}
    by_file = {d["image"]: d for d in details}

    drawings: list[DrawingMatch] = []
    gt_anns, gt_boxes = [], {}  # annotation id -> TrueBox
    dets_aware, dets_any, dt_boxes = [], [], {}  # det id -> PredictedBox
    images = sorted(truth["images"], key=lambda i: i["id"])
    for img in images:
        d = by_file.get(img["file_name"], {})
        dm = DrawingMatch(
            image=img["file_name"],
            width=img["width"],
            height=img["height"],
            parsed=d.get("parsed", True),
            response=d.get("response"),
        )
        for a in sorted(
            (a for a in truth["annotations"] if a["image_id"] == img["id"]),
            key=lambda a: a["id"],
        ):
            x, y, w, h = a["bbox"]
            tb = TrueBox(cat_name[a["category_id"]], [x, y, x + w, y + h])
            gid = len(gt_anns) + 1  # pycocotools reads 0 as "no match": ids from 1
            gt_anns.append(
                {
                    "id": gid,
                    "image_id": img["id"],
                    "category_id": a["category_id"],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            gt_boxes[gid] = tb
            dm.truth.append(tb)
        for b in d.get("boxes", []):
            x1, y1, x2, y2 = b["bbox"]
            pb = PredictedBox(b["label"], [x1, y1, x2, y2])
            did = len(dt_boxes) + 1  # loadRes numbers the predictions 1, 2, ... in this order
            dt_boxes[did] = pb
            row = {"image_id": img["id"], "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
            dets_any.append({**row, "category_id": cat_id.get(b["label"], 0)})
            if b["label"] in cat_id:
                dets_aware.append({**row, "category_id": cat_id[b["label"]], "_id": did})
            dm.predicted.append(pb)
        drawings.append(dm)

    gt_dataset = {"images": images, "annotations": gt_anns, "categories": cats}
    # class-aware: the unknown labels' boxes are left out (false alarms of no class)
    aware_ids = [d.pop("_id") for d in dets_aware]
    tp = dict.fromkeys(classes, 0)
    for e in _evaluate(gt_dataset, dets_aware, use_cats=True):
        for did, m in zip(e["dtIds"], e["dtMatches"][0], strict=True):
            if m > 0:
                dt_boxes[aware_ids[did - 1]].correct = True
                gt_boxes[int(m)].found = True
                tp[cat_name[e["category_id"]]] += 1
    for e in _evaluate(gt_dataset, dets_any, use_cats=False):
        for did, m in zip(e["dtIds"], e["dtMatches"][0], strict=True):
            if m > 0:
                dt_boxes[did].truth = gt_boxes[int(m)].label
                gt_boxes[int(m)].taken_for = dt_boxes[did].label

    per_class = {}
    for c in classes:
        n_true = sum(t.label == c for d in drawings for t in d.truth)
        n_pred = sum(p.label == c for d in drawings for p in d.predicted)
        p, r = _ratio(tp[c], n_pred), _ratio(tp[c], n_true)
        per_class[c] = {
            "n_true": n_true,
            "n_pred": n_pred,
            "tp": tp[c],
            "fp": n_pred - tp[c],
            "fn": n_true - tp[c],
            "precision": p,
            "recall": r,
            "f1": round(2 * p * r / (p + r), 6) if p + r else 0.0,
        }

    other = sorted({p.label for d in drawings for p in d.predicted} - set(classes))
    cols = [*classes, *other, MISSED]
    rows = [*classes, FALSE_ALARM]
    matrix = [[0] * len(cols) for _ in rows]
    for d in drawings:
        for t in d.truth:
            j = cols.index(t.taken_for) if t.taken_for is not None else len(cols) - 1
            matrix[rows.index(t.label)][j] += 1
        for p in d.predicted:
            if p.truth is None:
                matrix[-1][cols.index(p.label)] += 1
    confusion = {"rows": rows, "cols": cols, "matrix": matrix}
    return Matching(classes, drawings, per_class, confusion)
