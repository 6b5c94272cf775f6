"""coco_metrics against pycocotools run directly, and hand-counted P/R/F1 at IoU 0.5."""

from __future__ import annotations

import contextlib
import copy
import io

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from drawtune.eval.metrics import METRIC_KEYS, coco_metrics, grouped_ap50

# Three 100x100 images, classes a (id 1) and b (id 2). Boxes are xyxy pixels.
TRUTH_XYXY = {
    1: [("a", [10, 10, 50, 50]), ("b", [60, 60, 90, 90])],
    2: [("a", [0, 0, 40, 40]), ("a", [50, 50, 90, 90])],
    3: [("b", [20, 20, 80, 80])],
}
PREDICTIONS = [
    # image 1: exact hit on a; b found with IoU 900/1225 = 0.735 (a hit at 0.5, not at 0.75)
    {"image_id": 1, "label": "a", "bbox": [10, 10, 50, 50]},
    {"image_id": 1, "label": "b", "bbox": [55, 60, 90, 95]},
    # image 1: a label outside the categories
    {"image_id": 1, "label": "gear", "bbox": [0, 0, 5, 5]},
    # image 2: one hit, the second a is missed; one false positive far from any truth
    {"image_id": 2, "label": "a", "bbox": [0, 0, 40, 40]},
    {"image_id": 2, "label": "a", "bbox": [0, 60, 30, 90]},
    # image 3: right place, wrong class
    {"image_id": 3, "label": "a", "bbox": [20, 20, 80, 80]},
]
# Hand count at IoU 0.5: TP = 3 (img1 a, img1 b, img2 a);
# FP = 3 (gear, img2 stray a, img3 wrong-class a); FN = 2 (img2 second a, img3 b).
TP, FP, FN = 3, 3, 2


def make_truth(truth_xyxy=TRUTH_XYXY) -> dict:
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    cid = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    for img_id, boxes in truth_xyxy.items():
        images.append({"id": img_id, "file_name": f"{img_id}.png", "width": 100, "height": 100})
        for label, (x1, y1, x2, y2) in boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": cid[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": anns, "categories": cats}


def pycocotools_stats(truth: dict, predictions: list[dict]) -> list[float]:
    """COCOeval run by hand: score 1.0 detections, xyxy -> xywh, unknown labels left out."""
    cid = {c["name"]: c["id"] for c in truth["categories"]}
    dets = [
        {
            "image_id": p["image_id"],
            "category_id": cid[p["label"]],
            "bbox": [
                p["bbox"][0],
                p["bbox"][1],
                p["bbox"][2] - p["bbox"][0],
                p["bbox"][3] - p["bbox"][1],
            ],
            "score": 1.0,
        }
        for p in predictions
        if p["label"] in cid
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(truth)
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [round(float(s), 6) for s in ev.stats[:3]]


def test_matches_pycocotools_and_hand_counts():
    truth = make_truth()
    m = coco_metrics(copy.deepcopy(truth), copy.deepcopy(PREDICTIONS))
    stats = pycocotools_stats(truth, PREDICTIONS)
    assert [m["map"], m["map50"], m["map75"]] == stats
    # the case is not degenerate: AP is neither 0 nor 1, and 0.75 IoU loses the b hit
    assert 0.0 < m["map50"] < 1.0
    assert m["map75"] < m["map50"]
    precision = TP / (TP + FP)  # 3/6 = 0.5
    recall = TP / (TP + FN)  # 3/5 = 0.6
    f1 = 2 * precision * recall / (precision + recall)  # 0.6/1.1 = 0.545455
    assert m["precision50"] == pytest.approx(0.5)
    assert m["recall50"] == pytest.approx(0.6)
    assert m["f1_50"] == pytest.approx(round(f1, 6))
    assert m["f1_50"] == pytest.approx(0.545455)
    assert m["n_images"] == 3
    assert m["n_unparseable"] == 0
    assert m["per_class"]["a"]["n_true"] == 3
    assert m["per_class"]["b"]["n_true"] == 2


def test_per_class_ap50_by_hand():
    # Class b alone: truth in images 1 and 3, one prediction (image 1, IoU 0.735).
    # Recall reaches 0.5 at precision 1.0 -> 101-point interpolated AP50 = 51/101.
    truth = make_truth()
    m = coco_metrics(truth, PREDICTIONS)
    assert m["per_class"]["b"]["ap50"] == pytest.approx(round(51 / 101, 6))


def test_perfect_predictions():
    truth = make_truth()
    preds = [
        {"image_id": img_id, "label": label, "bbox": list(box)}
        for img_id, boxes in TRUTH_XYXY.items()
        for label, box in boxes
    ]
    m = coco_metrics(truth, preds)
    assert m["map50"] == 1.0
    assert m["map"] == 1.0
    assert m["map75"] == 1.0
    assert m["precision50"] == 1.0
    assert m["recall50"] == 1.0
    assert m["f1_50"] == 1.0
    assert all(c["ap50"] == 1.0 for c in m["per_class"].values())


def test_no_predictions_gives_zeros():
    m = coco_metrics(make_truth(), [], n_unparseable=2)
    for k in ("map", "map50", "map75", "precision50", "recall50", "f1_50"):
        assert m[k] == 0.0
    assert m["n_images"] == 3
    assert m["n_unparseable"] == 2
    assert m["per_class"] == {
        "a": {"ap": 0.0, "ap50": 0.0, "n_true": 3},
        "b": {"ap": 0.0, "ap50": 0.0, "n_true": 2},
    }


def test_only_unknown_labels():
    m = coco_metrics(make_truth(), [{"image_id": 1, "label": "gear", "bbox": [0, 0, 5, 5]}])
    assert m["map50"] == 0.0
    assert m["precision50"] == 0.0
    assert m["recall50"] == 0.0


def test_unknown_label_is_a_false_positive():
    truth = make_truth()
    preds = [
        {"image_id": img_id, "label": label, "bbox": list(box)}
        for img_id, boxes in TRUTH_XYXY.items()
        for label, box in boxes
    ]
    preds.append({"image_id": 2, "label": "gear", "bbox": [0, 0, 40, 40]})
    m = coco_metrics(truth, preds)
    # 5 TP among 6 predictions; recall and AP are untouched
    assert m["precision50"] == pytest.approx(round(5 / 6, 6))
    assert m["recall50"] == 1.0
    assert m["map50"] == 1.0


def test_keys_are_exactly_metric_keys():
    m = coco_metrics(make_truth(), PREDICTIONS)
    assert tuple(m) == METRIC_KEYS
    assert set(METRIC_KEYS) == {
        "map",
        "map50",
        "map75",
        "per_class",
        "precision50",
        "recall50",
        "f1_50",
        "n_images",
        "n_unparseable",
    }
    assert set(coco_metrics(make_truth(), [])) == set(METRIC_KEYS)


def test_does_not_modify_inputs():
    truth, preds = make_truth(), copy.deepcopy(PREDICTIONS)
    before = (copy.deepcopy(truth), copy.deepcopy(preds))
    coco_metrics(truth, preds)
    assert (truth, preds) == before


def test_grouped_ap50_scores_a_group_as_one_class_as_pycocotools_does():
    # image 3's box is at b's place but labelled a: a miss for both classes, a hit for {a, b}
    truth = make_truth()
    grouped = grouped_ap50(copy.deepcopy(truth), copy.deepcopy(PREDICTIONS), {"ab": ["a", "b"]})
    merged_truth = make_truth(
        {i: [("a", box) for _, box in boxes] for i, boxes in TRUTH_XYXY.items()}
    )
    merged_preds = [
        {**p, "label": "a" if p["label"] in ("a", "b") else p["label"]} for p in PREDICTIONS
    ]
    assert grouped == {"ab": pycocotools_stats(merged_truth, merged_preds)[1]}
    per_class = coco_metrics(copy.deepcopy(truth), copy.deepcopy(PREDICTIONS))["per_class"]
    assert grouped["ab"] > max(per_class["a"]["ap50"], per_class["b"]["ap50"])


def test_grouped_ap50_of_one_class_is_its_own_ap50_and_an_absent_group_scores_zero():
    truth = make_truth()
    per_class = coco_metrics(copy.deepcopy(truth), copy.deepcopy(PREDICTIONS))["per_class"]
    got = grouped_ap50(truth, PREDICTIONS, {"just b": ["b"], "none": ["gear"]})
    assert got == {"just b": per_class["b"]["ap50"], "none": 0.0}
    assert got["just b"] > 0
