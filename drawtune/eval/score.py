"""Scoring a model's answers on the test split: detection (answers parsed, boxes mapped to the
drawings' pixels and scored from their tokens' log-probabilities, COCO metrics) and
classification (the class named, accuracy and F1)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..coords import ResizeSpec, from_model, model_frame
from ..errors import StageError
from .classify_metrics import classification_metrics
from .confidence import DEFAULT_VARIANT, NO_SCORES, BoxProbs, answer_probs, check_variant
from .match import match_results
from .metrics import METRIC_KEYS, coco_metrics, evaluate, metrics_of, pr_curves
from .parse import Parsed, parse_answer
from .parse_class import parse_class
from .threshold import operating_point, reliability

log = logging.getLogger("drawtune")

# metrics.json of a detection model: COCO's, then how the boxes were scored
CONFIDENCE_KEYS = (
    "scores",  # the box score variant (drawtune.eval.confidence), or "none": all boxes 1.0
    "n_unscored",  # answers with boxes whose log-probabilities were missing or unusable
    "map_unscored",  # map and map50 with every box scored 1.0, as without log-probabilities
    "map50_unscored",
    "threshold",  # the validation split's F1-maximising score threshold (None: none chosen)
    "at_threshold",  # precision, recall, F1 at IoU 0.5 of the boxes kept by it
)
DETECTION_KEYS = METRIC_KEYS + CONFIDENCE_KEYS


@dataclass
class Box:
    """One predicted box in the drawing's pixels, with what its tokens say (None without
    log-probabilities)."""

    label: str
    bbox: list[float]
    probs: BoxProbs | None = None

    def score(self, variant: str) -> float | None:
        return None if self.probs is None else self.probs.score(variant)


def scored_boxes(
    text: str | None, family: str, width: int, height: int, spec: ResizeSpec, logprobs=None
) -> tuple[Parsed, list[Box], bool]:
    """Parse one answer, map its boxes to the drawing's pixels and take their probabilities
    from ``logprobs`` (ms-swift's field): ``(parsed, boxes, scored)``; ``scored`` is False when
    the answer has boxes but no usable log-probabilities. Boxes that collapse to no area inside
    the drawing are left out."""
    parsed = parse_answer(text)
    probs = answer_probs(parsed, text, logprobs) if parsed.boxes else []
    boxes = []
    for k, (label, box) in enumerate(parsed.boxes):
        px = from_model(box, family, width, height, spec)
        if px[2] - px[0] > 0 and px[3] - px[1] > 0:
            boxes.append(Box(label, px, probs[k] if probs else None))
    return parsed, boxes, probs is not None


def answer_boxes(text: str | None, family: str, width: int, height: int, spec: ResizeSpec):
    """Parse one answer and map its boxes to the drawing's pixels: ``(parsed, [(label, box)])``
    (boxes that collapse to no area inside the drawing are left out)."""
    parsed, boxes, _ = scored_boxes(text, family, width, height, spec)
    return parsed, [(b.label, b.bbox) for b in boxes]


def box_rows(boxes: list[Box], variant: str | None = None) -> list[dict]:
    """Boxes as ``{"label", "bbox"}`` rows to 0.01 pixel (details, predict, serve); with their
    ``score`` under ``variant`` and their probabilities ``p`` when they have them."""
    rows = []
    for b in boxes:
        row = {"label": b.label, "bbox": [round(v, 2) for v in b.bbox]}
        if b.probs is not None and variant is not None:
            row["score"] = b.score(variant)
            row["p"] = b.probs.as_dict()
        rows.append(row)
    return rows


def rounded(boxes) -> list[dict]:
    """``[(label, box)]`` as ``{"label", "bbox"}`` rows, to 0.01 pixel."""
    return box_rows([Box(label, px) for label, px in boxes])


def pixel_boxes(text: str | None, family: str, width: int, height: int, spec: ResizeSpec):
    """Parse one answer; ``(parsed, rows)`` with the boxes in the drawing's pixels."""
    parsed, boxes = answer_boxes(text, family, width, height, spec)
    return parsed, rounded(boxes)


def kept_rows(rows: list[dict], threshold: float | None) -> list[dict]:
    """The box rows a threshold keeps: those scored at or above it (all without a threshold,
    and all when the boxes carry no score)."""
    if threshold is None:
        return list(rows)
    return [r for r in rows if r.get("score") is None or r["score"] >= threshold]


@dataclass
class Answers:
    """Every test drawing's answer read: ``predictions`` for COCO (``probs`` kept),
    ``details`` one row per drawing, ``n_unparseable`` and the drawings whose boxes have no
    usable log-probabilities (``unscored``)."""

    predictions: list[dict]
    details: list[dict]
    n_unparseable: int
    unscored: list[str]

    @property
    def has_scores(self) -> bool:
        """Every box has its probabilities (and there are answers with log-probabilities)."""
        return not self.unscored and all(p["probs"] is not None for p in self.predictions)


def read_answers(
    rows: list[dict], truth: dict, family: str, spec: ResizeSpec, manifest: list[dict] | None = None
) -> Answers:
    """Pair result rows with the truth's drawings, parse the answers, map boxes to original
    pixels and take their probabilities from the rows' ``logprobs``."""
    frames = {m["image"]: (m["frame_width"], m["frame_height"]) for m in manifest or []}
    preds, details, n_bad, unscored = [], [], 0, []
    for img, row in match_results(rows, truth):
        w, h = img["width"], img["height"]
        expect = model_frame(family, w, h, spec)
        if img["file_name"] in frames and tuple(frames[img["file_name"]]) != tuple(expect):
            raise StageError(
                f"{img['file_name']}: manifest frame {frames[img['file_name']]} differs from "
                f"{expect} recomputed with the current resize settings"
            )
        text = row.get("response") if row else None
        logprobs = row.get("logprobs") if row else None
        parsed, boxes, scored = scored_boxes(text, family, w, h, spec, logprobs)
        if not parsed.ok:
            n_bad += 1
        if not scored:
            unscored.append(img["file_name"])
        preds += [
            {"image_id": img["id"], "label": b.label, "bbox": b.bbox, "probs": b.probs}
            for b in boxes
        ]
        details.append(
            {
                "image": img["file_name"],
                "matched": row is not None,
                "parsed": parsed.ok,
                "salvaged": parsed.salvaged,
                "logprobs": logprobs is not None,
                "boxes": boxes,
                "response": text,
            }
        )
    return Answers(preds, details, n_bad, unscored)


def with_scores(predictions: list[dict], variant: str) -> list[dict]:
    """COCO predictions scored by ``variant`` (1.0 for boxes without probabilities)."""
    return [
        {**p, "score": 1.0 if p["probs"] is None else p["probs"].score(variant)}
        for p in predictions
    ]


def scores_used(answers: Answers, variant: str) -> str:
    """The variant the boxes are scored with: ``none`` when any box lacks probabilities (a
    ranking of probabilities mixed with 1.0 would mean nothing) or no answer has any."""
    if not answers.has_scores or not any(d["logprobs"] for d in answers.details):
        return NO_SCORES
    return variant


@dataclass
class Scoring:
    metrics: dict
    details: list[dict]
    curves: dict


def evaluate_answers(
    rows: list[dict],
    truth: dict,
    family: str,
    spec: ResizeSpec,
    manifest: list[dict] | None = None,
    variant: str = DEFAULT_VARIANT,
    threshold: float | None = None,
) -> Scoring:
    """Parse answers, map boxes to original pixels, score them with ``variant`` and compute
    COCO metrics ranked by the scores (every box 1.0 when the answers have no
    log-probabilities: ``scores: none``), the metrics at ``threshold`` (the one chosen on the
    validation split), and the curves: per-class precision-recall and the reliability of the
    scores."""
    answers = read_answers(rows, truth, family, spec, manifest)
    return scoring_of(answers, truth, variant, threshold)


def scoring_of(
    answers: Answers, truth: dict, variant: str = DEFAULT_VARIANT, threshold: float | None = None
) -> Scoring:
    """:func:`evaluate_answers` of answers already read (an untiled model's rows, or a tiled
    model's merged sheets: ``drawtune.eval.merge_tiles.sheet_answers``)."""
    used = scores_used(answers, check_variant(variant))
    if answers.unscored and any(d["logprobs"] for d in answers.details):
        log.warning(
            "%d answers with boxes have no usable log-probabilities (first: %s): every box "
            "is scored 1.0 (scores: none)",
            len(answers.unscored),
            answers.unscored[0],
        )
    preds = with_scores(answers.predictions, used)
    e = evaluate(truth, preds)
    metrics = metrics_of(e, len(truth["images"]), answers.n_unparseable)
    flat = coco_metrics(truth, with_scores(answers.predictions, NO_SCORES))
    if used == NO_SCORES:
        threshold = None
    metrics.update(
        scores=used,
        n_unscored=len(answers.unscored),
        map_unscored=flat["map"],
        map50_unscored=flat["map50"],
        threshold=threshold,
        at_threshold=operating_point(e.scores, e.tp50, e.n_true_total, threshold),
    )
    curves = {
        "scores": used,
        "threshold": threshold,
        "per_class": pr_curves(e),
        "reliability": reliability(e.scores, e.tp50) if used != NO_SCORES else None,
    }
    tp = iter(e.tp50)
    details = []
    for d in answers.details:
        boxes = box_rows(d["boxes"], used if used != NO_SCORES else None)
        for b in boxes:
            b["tp50"] = next(tp)
        details.append({**d, "boxes": boxes, "kept": len(kept_rows(boxes, threshold))})
    return Scoring(metrics, details, curves)


def score(
    rows: list[dict], truth: dict, family: str, spec: ResizeSpec, manifest: list[dict] | None = None
) -> tuple[dict, list[dict]]:
    """Parse answers, map boxes to original pixels, compute metrics; return (metrics, details)
    (:func:`evaluate_answers` with the default box score and no threshold)."""
    s = evaluate_answers(rows, truth, family, spec, manifest)
    return s.metrics, s.details


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
