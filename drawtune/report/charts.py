"""The report's charts, in one style: per-class AP, loss curves with the learning rate,
training telemetry, confusion matrices (classification, and detection with misses and false
alarms), and the data page's counts and box sizes. Each returns PNG bytes
(:func:`drawtune.report.html.png_bytes`) drawn for the width it is shown at."""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..eval.classify_metrics import INVALID  # noqa: E402
from ..jsonio import load_jsonl  # noqa: E402
from .html import png_bytes  # noqa: E402

# Okabe-Ito: told apart by colour-blind readers too
COLORS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#999999", "#000000"]
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "figure.dpi": 100,
}
WIDE = 9.0  # inches: 900 CSS pixels, the pages' full width
HALF = 5.6


@contextmanager
def style():
    with matplotlib.rc_context(STYLE):
        yield


def step_of(row: dict) -> int:
    """ms-swift logs ``global_step/max_steps`` as ``"3/6"``."""
    return int(str(row["global_step/max_steps"]).split("/")[0])


def training_curves(logging_rows: list[dict], title: str = "") -> bytes:
    """Training loss per logging step, validation loss per evaluation and, on the right axis,
    the learning rate."""
    with style():
        fig, ax = plt.subplots(figsize=(WIDE, 3.6))
        tr = [(step_of(r), r["loss"]) for r in logging_rows if "loss" in r]
        ev = [(step_of(r), r["eval_loss"]) for r in logging_rows if "eval_loss" in r]
        lr = [(step_of(r), r["learning_rate"]) for r in logging_rows if "learning_rate" in r]
        lines = []
        if tr:
            lines += ax.plot(*zip(*tr, strict=True), ".-", color=COLORS[0], label="training loss")
        if ev:
            lines += ax.plot(
                *zip(*ev, strict=True), "o--", color=COLORS[5], label="validation loss"
            )
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        if lr:
            ax2 = ax.twinx()
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
            lines += ax2.plot(
                *zip(*lr, strict=True), color=COLORS[6], lw=1.2, label="learning rate"
            )
            ax2.set_ylabel("learning rate")
            ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        if lines:
            ax.legend(lines, [ln.get_label() for ln in lines], loc="upper right")
        else:
            ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)
        if title:
            ax.set_title(title)
        fig.tight_layout()
        return png_bytes(fig)


TELEMETRY_PANELS = (
    ("learning_rate", "learning rate"),
    ("grad_norm", "gradient norm"),
    ("tokens_per_s", "tokens/s"),
    ("mfu", "MFU (model FLOPs utilisation)"),
    ("peak_memory_gib", "peak GPU memory (GiB)"),
    ("samples_per_s", "samples/s"),
)


def telemetry_png(runs: dict[str, list[dict]]) -> bytes:
    """Learning rate, gradient norm, throughput, MFU and peak memory against step, one line per
    run (a panel without data, e.g. memory on CPU, says so)."""
    with style():
        fig, axes = plt.subplots(2, 3, figsize=(WIDE, 4.8))
        for ax, (key, title) in zip(axes.flat, TELEMETRY_PANELS, strict=True):
            drawn = False
            for name, rows in sorted(runs.items()):
                pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
                if pts:
                    ax.plot(*zip(*pts, strict=True), ".-", label=name)
                    drawn = True
            ax.set_title(title)
            if not drawn:
                ax.text(
                    0.5,
                    0.5,
                    "not measured here",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="#5f6b7a",
                )
            elif len(runs) > 1:
                ax.legend()
        for ax in axes[1]:
            ax.set_xlabel("optimizer step")
        fig.tight_layout()
        return png_bytes(fig)


def telemetry_chart(telemetry_files: dict, out) -> None:
    """:func:`telemetry_png` of telemetry files, written to ``out``."""
    runs = {name: load_jsonl(path) for name, path in telemetry_files.items()}
    Path(out).write_bytes(telemetry_png(runs))


def per_class_ap(per_class_by_model: dict[str, dict], keys=("ap50", "ap")) -> bytes:
    """Horizontal bars per class: AP at IoU 0.5 and AP over IoU 0.5:0.95 for one model, or
    AP50 of several models side by side. Class names carry their count of true boxes."""
    models = list(per_class_by_model)
    first = per_class_by_model[models[0]] if models else {}
    classes = sorted(first)
    names = {"ap50": "AP at IoU 0.5", "ap": "AP at IoU 0.5:0.95"}
    if len(models) == 1:
        series = [(names[k], models[0], k) for k in keys]
    else:
        series = [(m, m, keys[0]) for m in models]
    with style():
        height = 1.0 + 0.32 * max(len(classes), 1) * max(len(series), 1) ** 0.5
        fig, ax = plt.subplots(figsize=(WIDE * 0.8, height))
        bar = 0.8 / max(len(series), 1)
        for k, (label, model, key) in enumerate(series):
            ys = [i - 0.4 + bar * (k + 0.5) for i in range(len(classes))]
            xs = [per_class_by_model[model][c][key] for c in classes]
            ax.barh(ys, xs, bar, label=label, color=COLORS[k % len(COLORS)])
            for y, x in zip(ys, xs, strict=True):
                ax.text(x + 0.01, y, f"{x:.3f}", va="center", fontsize=8)
        names = [f"{c} ({first[c].get('n_true', 0)})" for c in classes]
        ax.set_yticks(range(len(classes)), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.08)
        ax.set_xlabel("average precision (class: true boxes in the test split)")
        ax.grid(axis="y", alpha=0)
        ax.legend(loc="lower right")
        fig.tight_layout()
        return png_bytes(fig)


def _matrix(ax, m, rows, cols, title, xlabel, ylabel, special=()):
    """Counts in coloured cells; the row/column names in ``special`` set apart in italics."""
    top = max((v for row in m for v in row), default=0)
    ax.imshow(m or [[0] * len(cols)], cmap="Blues", vmin=0, vmax=max(top, 1), aspect="auto")
    ax.grid(False)
    for i, row in enumerate(m):
        for j, v in enumerate(row):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if top and v > top / 2 else "black",
            )
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for t in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        if t.get_text() in special:
            t.set_fontstyle("italic")
            t.set_color("#b42318")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def confusion_png(metrics: dict) -> bytes:
    """A classification model's confusion matrix: truth down, answers across; answers that
    name no class in their own column."""
    conf = metrics["confusion"]
    cols = conf["labels"]
    rows = [c for c in cols if c != INVALID][: len(conf["matrix"])]
    acc = metrics.get("accuracy")
    title = f"n = {metrics.get('n', 0)}"
    if acc is not None:
        title += f", accuracy {acc:.3f}, macro-F1 {metrics.get('macro_f1', 0):.3f}"
    side = 1.8 + 0.5 * len(cols)
    with style():
        fig, ax = plt.subplots(figsize=(min(side + 1.0, WIDE), side))
        _matrix(ax, conf["matrix"], rows, cols, title, "answer", "truth", special=(INVALID,))
        fig.tight_layout()
        return png_bytes(fig)


def confusion_chart(metrics: dict, out) -> None:
    Path(out).write_bytes(confusion_png(metrics))


def detection_confusion_png(confusion: dict, special=()) -> bytes:
    """The detection confusion matrix of :func:`drawtune.eval.confusion.match_detections`:
    true class down (the last row: false alarms), predicted class across (the last column:
    misses)."""
    rows, cols = confusion["rows"], confusion["cols"]
    side = 1.8 + 0.5 * len(cols)
    with style():
        fig, ax = plt.subplots(figsize=(min(side + 1.0, WIDE), 1.8 + 0.5 * len(rows)))
        _matrix(
            ax,
            confusion["matrix"],
            rows,
            cols,
            "boxes matched at IoU 0.5, any class",
            "predicted class",
            "true class",
            special=special,
        )
        fig.tight_layout()
        return png_bytes(fig)


def counts_by_split(counts: dict[str, dict[str, int]], xlabel: str, classes=None) -> bytes:
    """Horizontal bars per class (in the order of ``classes``), stacked by split
    (``counts[split][class]``)."""
    splits = list(counts)
    classes = list(classes or sorted({c for s in counts.values() for c in s}))
    with style():
        fig, ax = plt.subplots(figsize=(HALF, 1.0 + 0.34 * max(len(classes), 1)))
        left = [0] * len(classes)
        for k, s in enumerate(splits):
            xs = [counts[s].get(c, 0) for c in classes]
            ax.barh(range(len(classes)), xs, 0.7, left=left, label=s, color=COLORS[k])
            left = [a + b for a, b in zip(left, xs, strict=True)]
        ax.set_yticks(range(len(classes)), classes)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", alpha=0)
        ax.legend(loc="lower right")
        fig.tight_layout()
        return png_bytes(fig)


def _percent_axis(axis) -> None:
    """A log axis of shares labelled in per cent at 1, 2 and 5 of each decade."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:.3g} %"))
    axis.set_minor_formatter(NullFormatter())


def box_sizes(sizes: dict[str, list[tuple[float, float]]]) -> bytes:
    """Box sizes relative to the sheet, per class (``sizes[class]``: (box width / sheet width,
    box height / sheet height) per box): the distribution of the box's side relative to the
    sheet's (the square root of the area share), and width against height."""
    classes = sorted(sizes)
    with style():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(WIDE, 1.4 + 0.34 * max(len(classes), 4)))
        rel = [[math.sqrt(w * h) for w, h in sizes[c]] or [float("nan")] for c in classes]
        if classes:
            a1.boxplot(rel, orientation="horizontal", widths=0.6, showfliers=True)
            a1.set_yticks(range(1, len(classes) + 1), [f"{c} ({len(sizes[c])})" for c in classes])
            a1.invert_yaxis()
        a1.set_xscale("log")
        _percent_axis(a1.xaxis)
        a1.set_xlabel("box side / sheet side  (√ of the area share, log scale)")
        a1.set_title("box size per class (boxes)")
        for k, c in enumerate(classes):
            if sizes[c]:
                a2.scatter(
                    *zip(*sizes[c], strict=True),
                    s=12,
                    alpha=0.7,
                    label=c,
                    color=COLORS[k % len(COLORS)],
                )
        a2.set_xscale("log")
        a2.set_yscale("log")
        _percent_axis(a2.xaxis)
        _percent_axis(a2.yaxis)
        a2.set_xlabel("box width / sheet width")
        a2.set_ylabel("box height / sheet height")
        a2.set_title("width and height of each box")
        if classes:
            a2.legend(loc="lower right", markerscale=1.5)
        fig.tight_layout()
        return png_bytes(fig)
