"""A model's box score and score threshold, chosen on the validation split (rule
calibrate_scores).

Every box score of ``drawtune.eval.confidence.VARIANTS`` is measured on the validation split's
answers (COCO mAP ranked by it, and its best F1 at IoU 0.5); the configured one is used, or with
``auto`` the one with the highest mAP. Its threshold is the score that maximises F1 on the
validation split (``drawtune.eval.threshold.best_threshold``). The result is a small JSON file
kept with the model (``results/train/<model>/confidence.json``): the test split's scoring,
``drawtune predict`` and ``drawtune serve`` read it, and drop the boxes scored below the
threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..coords import ResizeSpec
from ..errors import DrawtuneError
from .confidence import DEFAULT_VARIANT, NO_SCORES, VARIANTS
from .metrics import evaluate, metrics_of
from .score import Answers, read_answers, scores_used, with_scores
from .threshold import best_threshold, operating_point

AUTO = "auto"  # confidence.score: the variant with the highest validation mAP
CHOICES = (AUTO, *VARIANTS)
# the name a confidence file has inside a model folder it travels with (drawtune predict --model)
MODEL_FILE = "drawtune-confidence.json"


def _result(scores: str, chosen_by: str, threshold=None, reason=None, validation=None) -> dict:
    return {
        "scores": scores,
        "chosen_by": chosen_by,
        "threshold": threshold,
        "reason": reason,
        "validation": validation,
    }


def unscored(reason: str) -> dict:
    """The result for a model whose boxes are not scored (``reason`` says why)."""
    return _result(NO_SCORES, "no log-probabilities", reason=reason)


def calibrate(
    rows: list[dict],
    truth: dict,
    family: str,
    spec: ResizeSpec,
    manifest: list[dict] | None = None,
    score: str = DEFAULT_VARIANT,
) -> dict:
    """The box score and threshold for a model from its answers on the validation split
    (``rows``: ms-swift infer rows with ``logprobs``; ``truth``: the split's COCO truth)."""
    answers = read_answers(rows, truth, family, spec, manifest) if truth["images"] else None
    return calibrate_answers(answers, truth, score)


def calibrate_answers(answers: Answers | None, truth: dict, score: str = DEFAULT_VARIANT) -> dict:
    """:func:`calibrate` of answers already read (a tiled model's merged sheets:
    ``drawtune.eval.merge_tiles.sheet_answers``); None: the split has no drawings."""
    if score not in CHOICES:
        raise ValueError(f"unknown box score {score!r}; expected one of {', '.join(CHOICES)}")
    fallback = DEFAULT_VARIANT if score == AUTO else score
    how = "config" if score != AUTO else "default (nothing to measure)"
    if score == NO_SCORES:
        return _result(NO_SCORES, "config", reason="confidence.score is none")
    if answers is None or not truth["images"]:
        return _result(fallback, how, reason="the validation split has no drawings")
    if scores_used(answers, fallback) == NO_SCORES:
        reason = "the validation answers carry no log-probabilities"
        if answers.unscored and any(d["logprobs"] for d in answers.details):
            reason = f"{len(answers.unscored)} validation answers have unusable log-probabilities"
        return unscored(reason)
    variants = {}
    n_true = None
    for name in VARIANTS:
        e = evaluate(truth, with_scores(answers.predictions, name))
        n_true = e.n_true_total
        m = metrics_of(e, len(truth["images"]))
        t = best_threshold(e.scores, e.tp50, e.n_true_total)
        variants[name] = {
            "map": m["map"],
            "map50": m["map50"],
            "threshold": t,
            **operating_point(e.scores, e.tp50, e.n_true_total, t),
        }
    if score == AUTO:
        # the highest mAP, then mAP50; equal ones in the order of VARIANTS (the default first)
        chosen = max(VARIANTS, key=lambda v: (variants[v]["map"], variants[v]["map50"]))
        how = "validation map"
    else:
        chosen = score
    validation = {
        "n_images": len(truth["images"]),
        "n_boxes": len(answers.predictions),
        "n_true": n_true,
        "variants": variants,
    }
    threshold = variants[chosen]["threshold"] if chosen != NO_SCORES else None
    reason = None
    if threshold is None and chosen != NO_SCORES:
        reason = (
            "the validation answers have no boxes: every box is kept"
            if not answers.predictions
            else "no box of the validation split is right at IoU 0.5: every box is kept"
        )
    return _result(chosen, how, threshold, reason, validation)


def read_confidence(path) -> dict | None:
    """A confidence file (:func:`calibrate`'s result) or None when there is none; a file that
    is no such result is a DrawtuneError naming it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DrawtuneError(f"{path}: not a confidence file ({e})") from None
    if not isinstance(data, dict) or data.get("scores") not in VARIANTS:
        raise DrawtuneError(f"{path}: not a confidence file (field 'scores')")
    t = data.get("threshold")
    if t is not None and not isinstance(t, int | float):
        raise DrawtuneError(f"{path}: field 'threshold' is {t!r}, not a number or null")
    return data
