"""The report's charts: loss curves, training telemetry, per-class AP and confusion matrices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..eval.classify_metrics import INVALID  # noqa: E402
from ..jsonio import load_jsonl  # noqa: E402


def loss_curve(logging_files: dict, out) -> None:
    """Training and validation loss against step, one line pair per experiment."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, path in sorted(logging_files.items()):
        rows = load_jsonl(path)
        tr = [(r["global_step/max_steps"], r["loss"]) for r in rows if "loss" in r]
        ev = [(r["global_step/max_steps"], r["eval_loss"]) for r in rows if "eval_loss" in r]
        step = lambda s: int(str(s).split("/")[0])  # noqa: E731
        if tr:
            ax.plot([step(s) for s, _ in tr], [v for _, v in tr], label=f"{name} train")
        if ev:
            ax.plot([step(s) for s, _ in ev], [v for _, v in ev], "o--", label=f"{name} val")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


TELEMETRY_PANELS = (
    ("learning_rate", "learning rate"),
    ("grad_norm", "grad norm"),
    ("tokens_per_s", "tokens/s"),
    ("mfu", "MFU"),
    ("peak_memory_gib", "peak GPU memory (GiB)"),
    ("samples_per_s", "samples/s"),
)


def telemetry_chart(telemetry_files: dict, out) -> None:
    """Learning rate, grad norm, throughput, MFU and peak memory against step, per experiment
    (a panel without data, e.g. memory on CPU, says so)."""
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), dpi=100)
    runs = {name: load_jsonl(path) for name, path in sorted(telemetry_files.items())}
    for ax, (key, title) in zip(axes.flat, TELEMETRY_PANELS, strict=True):
        drawn = False
        for name, rows in runs.items():
            pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot([s for s, _ in pts], [v for _, v in pts], ".-", label=name)
                drawn = True
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if not drawn:
            ax.text(0.5, 0.5, "not measured here", ha="center", va="center", transform=ax.transAxes)
        elif len(runs) > 1:
            ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("optimizer step")
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


def per_class_chart(metrics: dict, out) -> None:
    names = sorted(metrics)
    classes = sorted(next(iter(metrics.values()))["per_class"]) if metrics else []
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    width = 0.8 / max(len(names), 1)
    for k, n in enumerate(names):
        ys = [metrics[n]["per_class"][c]["ap50"] for c in classes]
        ax.bar([i + k * width for i in range(len(classes))], ys, width, label=n)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(classes))], classes, rotation=20)
    ax.set_ylabel("AP at IoU 0.5")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


def confusion_chart(metrics: dict, out) -> None:
    """The confusion matrix as a PNG: truth on y, predicted on x, counts in the cells."""
    conf = metrics["confusion"]
    cols = conf["labels"]
    rows = [c for c in cols if c != INVALID][: len(conf["matrix"])]
    m = conf["matrix"]
    side = 1.6 + 0.55 * len(cols)
    fig, ax = plt.subplots(figsize=(side + 1.2, side), dpi=100)
    im = ax.imshow(m or [[0] * len(cols)], cmap="Blues", vmin=0, aspect="auto")
    top = max((v for row in m for v in row), default=0)
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
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    acc = metrics.get("accuracy")
    title = f"n={metrics.get('n', 0)}"
    if acc is not None:
        title += f", accuracy {acc:.3f}, macro-F1 {metrics.get('macro_f1', 0):.3f}"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)
