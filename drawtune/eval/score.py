"""Scoring a model's answers on the test split: detection (answers parsed, boxes mapped to the
drawings' pixels, COCO metrics) and classification (the class named, accuracy and F1)."""

from __future__ import annotations

from ..coords import ResizeSpec, from_model, model_frame
from ..errors import StageError
from .classify_metrics import classification_metrics
from .match import match_results
from .metrics import coco_metrics
from .parse import parse_answer
from .parse_class import parse_class


def answer_boxes(text: str | None, family: str, width: int, height: int, spec: ResizeSpec):
    """Parse one answer and map its boxes to the drawing's pixels: ``(parsed, [(label, box)])``
    (boxes that collapse to no area inside the drawing are left out)."""
    parsed = parse_answer(text)
    boxes = []
    for label, box in parsed.boxes:
        px = from_model(box, family, width, height, spec)
        if px[2] - px[0] > 0 and px[3] - px[1] > 0:
            boxes.append((label, px))
    return parsed, boxes


def rounded(boxes) -> list[dict]:
    """``[(label, box)]`` as ``{"label", "bbox"}`` rows, to 0.01 pixel (details, serve)."""
    return [{"label": label, "bbox": [round(v, 2) for v in px]} for label, px in boxes]


def pixel_boxes(text: str | None, family: str, width: int, height: int, spec: ResizeSpec):
    """Parse one answer; ``(parsed, rows)`` with the boxes in the drawing's pixels."""
    parsed, boxes = answer_boxes(text, family, width, height, spec)
    return parsed, rounded(boxes)


def score(
    rows: list[dict], truth: dict, family: str, spec: ResizeSpec, manifest: list[dict] | None = None
) -> tuple[dict, list[dict]]:
    """Parse answers, map boxes to original pixels, compute metrics; return (metrics, details)."""
    frames = {m["image"]: (m["frame_width"], m["frame_height"]) for m in manifest or []}
    preds, details, n_bad = [], [], 0
    for img, row in match_results(rows, truth):
        w, h = img["width"], img["height"]
        expect = model_frame(family, w, h, spec)
        if img["file_name"] in frames and tuple(frames[img["file_name"]]) != tuple(expect):
            raise StageError(
                f"{img['file_name']}: manifest frame {frames[img['file_name']]} differs from "
                f"{expect} recomputed with the current resize settings"
            )
        text = row.get("response") if row else None
        parsed, boxes = answer_boxes(text, family, w, h, spec)
        if not parsed.ok:
            n_bad += 1
        preds += [{"image_id": img["id"], "label": label, "bbox": px} for label, px in boxes]
        details.append(
            {
                "image": img["file_name"],
                "matched": row is not None,
                "parsed": parsed.ok,
                "salvaged": parsed.salvaged,
                "boxes": rounded(boxes),
                "response": text,
            }
        )
    metrics = coco_metrics(truth, preds, n_unparseable=n_bad)
    return metrics, details


def score_classification(rows: list[dict], records: list[dict], classes: list[str]):
    """Pair test records with ms-swift infer rows (by image path, then by unique file name),
    parse the answers and compute the metrics; a record without a row counts as invalid.
    Returns ``(metrics, details)``, one detail per record in order."""
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
