"""The sections of a model's page (see :mod:`drawtune.report.sections` for how to add one):
key numbers, per-class AP, precision/recall/F1 per class at IoU 0.5, the confusion matrix,
loss curves with the learning rate, and training telemetry."""

from __future__ import annotations

from ..eval.confusion import FALSE_ALARM, MISSED
from . import charts
from .html import DASH, Col, esc, fmt, pct, table
from .html import figure as fig_html
from .leaderboard import describe, training_cost, training_settings
from .sections import ModelContext, Section


def overview(ctx: ModelContext) -> Section:
    m = ctx.metrics
    if ctx.task == "detect":
        cols = [
            Col("mAP", "IoU 0.5:0.95", True),
            Col("mAP50", "IoU 0.5", True),
            Col("mAP75", "IoU 0.75", True),
            Col("precision", "IoU 0.5", True),
            Col("recall", "IoU 0.5", True),
            Col("F1", "IoU 0.5", True),
            Col("test drawings", num=True),
            Col("unparseable answers", num=True),
        ]
        row = [
            fmt(m["map"]),
            fmt(m["map50"]),
            fmt(m["map75"]),
            fmt(m["precision50"]),
            fmt(m["recall50"]),
            fmt(m["f1_50"]),
            fmt(m["n_images"]),
            fmt(m["n_unparseable"]),
        ]
    else:
        cols = [
            Col("accuracy", num=True),
            Col("macro-F1", num=True),
            Col("test drawings", num=True),
            Col("no class named", "answers", True),
            Col("no class named", "% of answers", True),
        ]
        row = [
            fmt(m["accuracy"]),
            fmt(m["macro_f1"]),
            fmt(m["n"]),
            fmt(m["n_invalid"]),
            pct(m["invalid_rate"]),
        ]
    html = table(cols, [row], head_rows=0)
    html += f"<p>{esc(describe(ctx.info, ctx.counts))}.</p>"
    return Section("Key numbers", html, "overview")


def per_class_ap(ctx: ModelContext) -> Section | None:
    if ctx.task != "detect" or not ctx.metrics.get("per_class"):
        return None
    png = charts.per_class_ap({ctx.name: ctx.metrics["per_class"]})
    cap = (
        "COCO average precision per class (pycocotools) at IoU 0.5 and over IoU 0.5:0.95; "
        "each predicted box scores 1.0."
    )
    return Section("Average precision per class", fig_html(png, cap), "per-class-ap")


def per_class_prf(ctx: ModelContext) -> Section | None:
    """Detection: true boxes, predictions, TP/FP/FN and P/R/F1 per class at IoU 0.5 (COCO's
    class-aware matching); classification: scikit-learn's per-class numbers."""
    if ctx.task == "classify":
        cols = [
            Col("class"),
            Col("precision", num=True),
            Col("recall", num=True),
            Col("F1", num=True),
            Col("test drawings", num=True),
        ]
        rows = [
            [c, fmt(v["precision"]), fmt(v["recall"]), fmt(v["f1"]), fmt(v["support"])]
            for c, v in sorted(ctx.metrics["per_class"].items())
        ]
        return Section("Precision, recall and F1 per class", table(cols, rows), "per-class-prf")
    mt = ctx.matching
    if mt is None:
        return None
    cols = [
        Col("class"),
        Col("true boxes", num=True),
        Col("predicted", "boxes", True),
        Col("TP", "boxes", True),
        Col("FP", "boxes", True),
        Col("FN", "boxes", True),
        Col("precision", num=True),
        Col("recall", num=True),
        Col("F1", num=True),
    ]
    rows = []
    for c in mt.classes:
        v = mt.per_class[c]
        rows.append(
            [
                c,
                fmt(v["n_true"]),
                fmt(v["n_pred"]),
                fmt(v["tp"]),
                fmt(v["fp"]),
                fmt(v["fn"]),
                fmt(v["precision"]),
                fmt(v["recall"]),
                fmt(v["f1"]),
            ]
        )
    other = sum(
        not p.correct for d in mt.drawings for p in d.predicted if p.label not in mt.per_class
    )
    tot = {k: sum(v[k] for v in mt.per_class.values()) for k in ("n_true", "n_pred", "tp", "fn")}
    n_pred = tot["n_pred"] + other
    p = tot["tp"] / n_pred if n_pred else 0.0
    r = tot["tp"] / tot["n_true"] if tot["n_true"] else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    foot = [
        "all",
        fmt(tot["n_true"]),
        fmt(n_pred),
        fmt(tot["tp"]),
        fmt(n_pred - tot["tp"]),
        fmt(tot["fn"]),
        fmt(p),
        fmt(r),
        fmt(f1),
    ]
    cap = "At IoU 0.5, a prediction counts only for a true box of its own class"
    cap += (
        f"; {other} predicted boxes carry a label outside the classes (in 'all')." if other else "."
    )
    return Section(
        "Precision, recall and F1 per class", table(cols, rows, cap, foot=foot), "per-class-prf"
    )


def confusion(ctx: ModelContext) -> Section | None:
    if ctx.task == "classify":
        png = charts.confusion_png(ctx.metrics)
        cap = "Truth down, answers across; answers that name no class in the last column."
        return Section("Confusion matrix", fig_html(png, cap), "confusion")
    mt = ctx.matching
    if mt is None:
        return None
    png = charts.detection_confusion_png(mt.confusion, special=(MISSED, FALSE_ALARM))
    cap = (
        "Each true box matched at IoU 0.5 to a prediction of any class (pycocotools, "
        "class-agnostic): which class is taken for which. The last column counts true boxes no "
        "prediction matched (missed), the last row predictions that matched no true box "
        "(false alarms)."
    )
    return Section("Detection confusion matrix", fig_html(png, cap), "confusion")


def training(ctx: ModelContext) -> Section | None:
    if not ctx.trained:
        return None
    png = charts.training_curves(ctx.logging)
    secs, gpu_h, device = training_cost(ctx.telemetry)
    where = "CPU" if device == "cpu" else device
    line = [
        f"Trained on {where}" if device else "",
        f"{secs / 60:.1f} min" if secs else "",
        f"{gpu_h:.3f} GPU hours" if gpu_h else "",
    ]
    cap = (
        "Training loss per logging step (ms-swift's logging.jsonl), validation loss per "
        "evaluation, learning rate on the right axis. " + ", ".join(x for x in line if x)
    )
    return Section("Loss and learning rate", fig_html(png, cap), "training")


def telemetry(ctx: ModelContext) -> Section | None:
    if not ctx.trained or not ctx.telemetry:
        return None
    png = charts.telemetry_png({ctx.name: ctx.telemetry})
    cap = (
        "Per logging step: learning rate, gradient norm, samples/s and tokens/s over the "
        "interval, MFU (6 FLOPs per parameter and token for full fine-tuning, 4 for LoRA, "
        "against the GPU's dense bf16 peak) and peak GPU memory; MFU and memory only on a GPU. "
        f"Speed settings: {training_settings(ctx.telemetry)}."
    )
    last = ctx.telemetry[-1]
    cols = [
        Col("steps", num=True),
        Col("samples/s", "mean", True),
        Col("tokens/s", "mean", True),
        Col("MFU", "mean", True),
        Col("peak GPU memory", "GiB", True),
    ]

    def mean(key):
        vals = [r[key] for r in ctx.telemetry if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    peak = [r["peak_memory_gib"] for r in ctx.telemetry if r.get("peak_memory_gib") is not None]
    mfu = mean("mfu")
    row = [
        fmt(last.get("step")),
        fmt(mean("samples_per_s"), 2),
        fmt(mean("tokens_per_s"), 1),
        DASH if mfu is None else pct(mfu),
        fmt(max(peak), 1) if peak else DASH,
    ]
    return Section(
        "Training telemetry", table(cols, [row], head_rows=0) + fig_html(png, cap), "telemetry"
    )
