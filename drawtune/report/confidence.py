"""The report's box-confidence pages: per-class precision-recall curves on the test split, the
score threshold chosen on the validation split, and a reliability diagram (predicted score
against observed precision) per detection model (rule report_confidence)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from drawtune.report.html import DASH, Col, esc, fmt, page, table  # noqa: E402


def _save(fig, out) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)


def pr_chart(model: str, curves: dict, out) -> None:
    """One model's per-class precision-recall curves at IoU 0.5 on the test split (COCO's
    interpolated precision), with the recall each class reaches at the threshold marked."""
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    t = curves.get("threshold")
    drawn = False
    for name, c in sorted(curves["per_class"].items()):
        if not c["recall"]:
            continue
        (line,) = ax.plot(c["recall"], c["precision"], drawstyle="steps-post", label=name)
        drawn = True
        if t is not None:
            at = [i for i, s in enumerate(c["score"]) if s is not None and s >= t]
            if at:
                i = at[-1]
                ax.plot([c["recall"][i]], [c["precision"][i]], "o", color=line.get_color())
    scored = curves.get("scores", "none")
    title = f"{model}: boxes scored by {scored}"
    title += f", threshold {t:.3g} (dots)" if t is not None else ", no threshold"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("recall (IoU 0.5)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, loc="lower left")
    else:
        _empty(ax, "no class has a right box on the test split")
    _save(fig, out)


def reliability_chart(model: str, curves: dict, out) -> None:
    """One model's reliability diagram: per score bin, the fraction of its test boxes that are
    right at IoU 0.5 against their mean score (the diagonal is a calibrated score), with the
    number of boxes per bin."""
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="calibrated")
    rel = curves.get("reliability")
    bins = [b for b in (rel or {}).get("bins", []) if b["n"]]
    if bins:
        xs = [b["mean_score"] for b in bins]
        ys = [b["precision"] for b in bins]
        ax.bar(
            [(b["lo"] + b["hi"]) / 2 for b in bins],
            ys,
            width=[b["hi"] - b["lo"] for b in bins],
            alpha=0.25,
            edgecolor="tab:blue",
            label="precision per bin",
        )
        ax.plot(xs, ys, "o-", color="tab:blue", label="precision at the bin's mean score")
        for b, x, y in zip(bins, xs, ys, strict=True):
            ax.annotate(str(b["n"]), (x, y), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=7)  # fmt: skip
        ax.legend(fontsize=8, loc="upper left")
        title = f"{model}: expected calibration error {rel['ece']:.3f}"
    else:
        why = "boxes have no scores (no log-probabilities)" if rel is None else "no boxes"
        _empty(ax, why)
        title = model
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"box score ({curves.get('scores', 'none')})")
    ax.set_ylabel("observed precision (IoU 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    _save(fig, out)


def threshold_table(confidence: dict, metrics: dict, out, note: str = "") -> None:
    """Per detection model: the box score and threshold chosen on the validation split (and
    why), the validation F1 at it, and on the test split mAP with and without the scores and
    precision/recall/F1 of the boxes the threshold keeps. A page of the report's own style
    (drawtune/report/html.py)."""
    cols = [
        Col("model"),
        Col("box score"),
        Col("chosen by"),
        Col("threshold", num=True),
        Col("val F1 at threshold", num=True),
        Col("test mAP", "scored", num=True),
        Col("test mAP", "all 1.0", num=True),
        Col("test mAP50", "scored", num=True),
        Col("test mAP50", "all 1.0", num=True),
        Col("test P / R / F1", "at threshold", num=True),
        Col("boxes kept", num=True),
        Col("note"),
    ]
    rows = []
    for name in sorted(confidence):
        c, m = confidence[name], metrics.get(name, {})
        val = ((c.get("validation") or {}).get("variants") or {}).get(c["scores"], {})
        at = m.get("at_threshold") or {}
        prf = " / ".join(fmt(at.get(k)) for k in ("precision", "recall", "f1")) if at else DASH
        rows.append(
            [
                name,
                c["scores"],
                c["chosen_by"],
                DASH if c["threshold"] is None else f"{c['threshold']:.4g}",
                fmt(val.get("f1") if c["threshold"] is not None else None),
                fmt(m.get("map")),
                fmt(m.get("map_unscored")),
                fmt(m.get("map50")),
                fmt(m.get("map50_unscored")),
                prf,
                f"{at['n_kept']} of {at['n_boxes']}" if at else DASH,
                c.get("reason") or "",
            ]
        )
    parts = [table(cols, rows, caption="The chosen box score and threshold per model")]
    variant_cols = [
        Col("box score"),
        Col("mAP", num=True),
        Col("mAP50", num=True),
        Col("best threshold", num=True),
        Col("F1 at it", num=True),
    ]
    for name in sorted(confidence):
        v = (confidence[name].get("validation") or {}).get("variants")
        if not v:
            continue
        vrows = [
            [
                k,
                fmt(x["map"]),
                fmt(x["map50"]),
                DASH if x["threshold"] is None else f"{x['threshold']:.4g}",
                fmt(x["f1"]),
            ]
            for k, x in v.items()
        ]
        parts.append(f"<h2>{esc(name)}: every box score on the validation split</h2>")
        parts.append(table(variant_cols, vrows))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(page("Box confidences and thresholds", "".join(parts), note))
