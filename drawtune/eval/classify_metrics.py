"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1 and the confusion
matrix, by scikit-learn."""

from __future__ import annotations

INVALID = "(invalid)"  # the confusion-matrix column of answers that name no class


def classification_metrics(truth: list[str], predicted: list[str | None], classes: list[str]):
    """Accuracy, macro-F1 over ``classes``, per-class precision/recall/F1/support and the
    confusion matrix, by ``sklearn.metrics``. An answer that names no class (None, or a name
    outside ``classes``) is wrong and counted in ``n_invalid``. ``confusion.matrix`` has one
    row per class (truth, in ``classes`` order) and one column per ``confusion.labels``
    (predicted: the classes, then ``(invalid)``)."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    classes = list(classes)
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truth labels but {len(predicted)} predictions")
    if INVALID in classes:
        raise ValueError(f"{INVALID!r} cannot be a class name")
    unknown = sorted(set(truth) - set(classes))
    if unknown:
        raise ValueError(f"truth labels {unknown} are not in the classes {classes}")
    pred = [p if p in classes else INVALID for p in predicted]
    n = len(truth)
    n_invalid = pred.count(INVALID)
    labels = classes + [INVALID]
    r4 = lambda v: round(float(v), 4)  # noqa: E731
    if n:
        p, r, f, s = precision_recall_fscore_support(
            truth, pred, labels=classes, average=None, zero_division=0
        )
        accuracy = r4(accuracy_score(truth, pred))
        macro_f1 = r4(f1_score(truth, pred, labels=classes, average="macro", zero_division=0))
        matrix = confusion_matrix(truth, pred, labels=labels)[: len(classes)].tolist()
    else:
        p = r = f = s = [0] * len(classes)
        accuracy = macro_f1 = None
        matrix = [[0] * len(labels) for _ in classes]
    return {
        "n": n,
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "n_invalid": n_invalid,
        "invalid_rate": r4(n_invalid / n) if n else None,
        "per_class": {
            c: {"precision": r4(p[k]), "recall": r4(r[k]), "f1": r4(f[k]), "support": int(s[k])}
            for k, c in enumerate(classes)
        },
        "confusion": {"labels": labels, "matrix": [[int(v) for v in row] for row in matrix]},
    }
