"""The report's box-confidence pages: per-class precision-recall curves on the test split, the
score threshold chosen on the validation split, and a reliability diagram (predicted score
against observed precision) per detection model (rule report_confidence)."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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


def _num(v, fmt="{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def threshold_table(confidence: dict, metrics: dict, out, note: str = "") -> None:
    """Per detection model: the box score and threshold chosen on the validation split (and
    why), the validation F1 at it, and on the test split mAP with and without the scores and
    precision/recall/F1 of the boxes the threshold keeps."""
    head = (
        "<tr><th>model</th><th>box score</th><th>chosen by</th><th>threshold</th>"
        "<th>val F1 at threshold</th><th>test mAP (scored)</th><th>test mAP (all 1.0)</th>"
        "<th>test mAP50 (scored)</th><th>test mAP50 (all 1.0)</th>"
        "<th>test P / R / F1 at threshold</th><th>boxes kept</th><th>note</th></tr>"
    )
    rows = []
    for name in sorted(confidence):
        c, m = confidence[name], metrics.get(name, {})
        val = ((c.get("validation") or {}).get("variants") or {}).get(c["scores"], {})
        at = m.get("at_threshold") or {}
        prf = (
            f"{_num(at.get('precision'))} / {_num(at.get('recall'))} / {_num(at.get('f1'))}"
            if at
            else "-"
        )
        kept = f"{at['n_kept']} of {at['n_boxes']}" if at else "-"
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    name,
                    c["scores"],
                    c["chosen_by"],
                    _num(c["threshold"], "{:.4g}"),
                    _num(val.get("f1") if c["threshold"] is not None else None),
                    _num(m.get("map")),
                    _num(m.get("map_unscored")),
                    _num(m.get("map50")),
                    _num(m.get("map50_unscored")),
                    prf,
                    kept,
                    c.get("reason") or "",
                )
            )
            + "</tr>"
        )
    variants = []
    for name in sorted(confidence):
        v = (confidence[name].get("validation") or {}).get("variants")
        if not v:
            continue
        cells = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_num(x['map'])}</td><td>{_num(x['map50'])}</td>"
            f"<td>{_num(x['threshold'], '{:.4g}')}</td><td>{_num(x['f1'])}</td></tr>"
            for k, x in v.items()
        )
        variants.append(
            f"<h3>{html.escape(name)}: every box score on the validation split</h3><table>"
            "<tr><th>box score</th><th>mAP</th><th>mAP50</th><th>best threshold</th>"
            f"<th>F1 at it</th></tr>{cells}</table>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Box confidences</title>"
        "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
        "</style></head><body><h2>Box confidences and thresholds</h2>"
        + (f"<p>{html.escape(note)}</p>" if note else "")
        + f"<table>{head}{''.join(rows)}</table>{''.join(variants)}</body></html>\n"
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(page)
