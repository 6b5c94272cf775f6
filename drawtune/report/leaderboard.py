"""The leaderboard, the report's first page: every model ranked by mAP (detection) or macro-F1
(classification), with the difference to the untrained model of the same base, training time,
GPU hours, a cost estimate and one line on what was trained on what."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import CATEGORIES, charts
from .html import CSS, DASH, Col, Raw, esc, figure, fmt, page, pct, signed, table


@dataclass
class Entry:
    """One model on the leaderboard."""

    name: str
    metrics: dict
    info: dict  # task, tuner, base, family, epochs, learning_rate, lora_rank, datasets
    telemetry: list[dict] = field(default_factory=list)  # telemetry.jsonl rows (trained)
    counts: dict = field(default_factory=dict)  # drawings per split of its data

    @property
    def task(self) -> str:
        return self.info.get("task", "detect")

    @property
    def untrained(self) -> bool:
        return self.info.get("tuner", "none") == "none"


def training_cost(rows: list[dict]) -> tuple[float | None, float | None, str | None]:
    """(training seconds, GPU hours, device) of one run from its telemetry; GPU hours are None
    when it trained on CPU."""
    if not rows:
        return None, None, None
    last = rows[-1]
    secs, device = last.get("elapsed_s"), last.get("device", "cpu")
    if secs is None or device == "cpu":
        return secs, None, device
    return secs, secs * last.get("gpus", 1) / 3600, device


def training_settings(rows: list[dict]) -> str:
    """The speed settings the training job ran with (drawtune.train.gpu_plan), in one line."""
    s = rows[0].get("settings") if rows else None
    if not s:
        return DASH
    parts = [
        f"micro-batch {s['batch_size']} x {s['grad_accum']}",
        "checkpointing" if s["gradient_checkpointing"] else "no checkpointing",
        f"{s['dataloader_workers']} workers",
    ]
    if s.get("liger"):
        parts.append("Liger")
    if s.get("lora_dtype"):
        parts.append(f"LoRA {s['lora_dtype']}")
    if s.get("predicted_gib") is not None and s.get("gpu_gib"):
        parts.append(f"planned {s['predicted_gib']:.0f} of {s['gpu_gib']:.0f} GiB")
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def describe(info: dict, counts: dict) -> str:
    """What was trained on what, in one line: tuner, base model, epochs, learning rate, the
    training data and the test split."""
    base = f"{info.get('base', '?')} ({info.get('family', '?')})"
    if info.get("init_from"):
        base = f"{info['init_from']}'s trained model ({info.get('family', '?')})"
    names = info.get("datasets") or []
    data = ("dataset " if len(names) == 1 else "datasets ") + (", ".join(names) or "?")
    test = counts.get("test")
    tested = f"tested on {_plural(test, 'drawing')}" if test is not None else "tested"
    if info.get("tuner", "none") == "none":
        return f"the untrained base model {base}; {tested} of {data}"
    tuner = {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit base)"}.get(
        info["tuner"], info["tuner"]
    )
    if info.get("lora_rank") and info["tuner"] in ("lora", "qlora"):
        tuner += f" rank {info['lora_rank']}"
    epochs = info.get("epochs")
    line = f"{tuner} of {base}"
    if epochs is not None:
        line += f", {epochs:g} epoch{'' if epochs == 1 else 's'}"
    if info.get("learning_rate") is not None:
        line += f" at learning rate {info['learning_rate']:g}"
    chosen = info.get("train_datasets")
    if chosen:  # a part of the pooled split: its counts are not this experiment's
        names = ", ".join(chosen)
        return line + f", on the training drawings of {names} only; {tested} of {data}"
    if counts.get("train") is not None:
        line += f", on {_plural(counts['train'], 'training drawing')}"
        if counts.get("val"):
            line += f" ({counts['val']:,} for validation)"
    return line + f" of {data}; {tested}"


def baseline_of(entry: Entry, entries: dict[str, Entry]) -> str | None:
    """The untrained model a trained one is compared with: the same base model on the same
    task (and classification dataset); for detection otherwise ``base``, the untrained global
    base model. None for an untrained model."""
    if entry.untrained:
        return None
    same = [
        e.name
        for e in entries.values()
        if e.untrained
        and e.task == entry.task
        and e.info.get("base") == entry.info.get("base")
        and e.info.get("datasets") == entry.info.get("datasets")
    ]
    if same:
        return sorted(same)[0]
    if entry.task == "detect" and "base" in entries:
        return "base"
    return None


DETECT_RANK = ("map", "map50")
CLASSIFY_RANK = ("macro_f1", "accuracy")


def ranked(entries: dict[str, Entry], task: str) -> list[Entry]:
    keys = DETECT_RANK if task == "detect" else CLASSIFY_RANK
    mine = [e for e in entries.values() if e.task == task]
    return sorted(mine, key=lambda e: (*(-e.metrics[k] for k in keys), e.name))


def _best(order: list[Entry], keys) -> list[str]:
    """Highlight the first row when it is ahead of the second on the ranking metric."""
    marks = [""] * len(order)
    if len(order) > 1 and order[0].metrics[keys[0]] > order[1].metrics[keys[0]]:
        marks[0] = "best"
    return marks


def _cost_cells(e: Entry, usd_per_gpu_hour: float | None) -> list:
    if e.untrained:
        return ["untrained", DASH, DASH]
    secs, gpu_h, _ = training_cost(e.telemetry)
    t = DASH if secs is None else f"{secs / 60:.1f}"
    if gpu_h is None:
        return [t, "CPU" if secs is not None else DASH, DASH]
    usd = DASH if usd_per_gpu_hour is None else f"{gpu_h * usd_per_gpu_hour:,.2f}"
    return [t, f"{gpu_h:.3f}", usd]


COST_COLS = [
    Col("training time", "min", num=True),
    Col("GPU hours", "h", num=True),
    Col("cost", "USD", num=True),
]


def _delta(e: Entry, entries, key) -> Raw:
    base = baseline_of(e, entries)
    if base is None or base not in entries:
        return Raw(DASH)
    return signed(e.metrics[key] - entries[base].metrics[key])


def detection_table(entries: dict[str, Entry], usd_per_gpu_hour: float | None) -> str:
    cols = [
        Col("#", num=True),
        Col("model"),
        Col("mAP", "IoU 0.5:0.95", num=True),
        Col("Δ mAP", "vs untrained", num=True),
        Col("mAP50", "IoU 0.5", num=True),
        Col("Δ mAP50", "vs untrained", num=True),
        Col("precision", "IoU 0.5", num=True),
        Col("recall", "IoU 0.5", num=True),
        Col("F1", "IoU 0.5", num=True),
        Col("unparsed", "% of answers", num=True),
        *COST_COLS,
    ]
    rows, order = [], ranked(entries, "detect")
    for rank, e in enumerate(order, 1):
        m = e.metrics
        unparse = m["n_unparseable"] / m["n_images"] if m["n_images"] else 0.0
        rows.append(
            [
                str(rank),
                e.name,
                fmt(m["map"]),
                _delta(e, entries, "map"),
                fmt(m["map50"]),
                _delta(e, entries, "map50"),
                fmt(m["precision50"]),
                fmt(m["recall50"]),
                fmt(m["f1_50"]),
                pct(unparse),
                *_cost_cells(e, usd_per_gpu_hour),
            ]
        )
    return table(cols, rows, row_class=_best(order, DETECT_RANK), head_rows=2)


def classification_table(entries: dict[str, Entry], usd_per_gpu_hour: float | None) -> str:
    cols = [
        Col("#", num=True),
        Col("model"),
        Col("macro-F1", num=True),
        Col("Δ macro-F1", "vs untrained", num=True),
        Col("accuracy", num=True),
        Col("Δ accuracy", "vs untrained", num=True),
        Col("no class named", "% of answers", num=True),
        Col("test drawings", num=True),
        *COST_COLS,
    ]
    rows, order = [], ranked(entries, "classify")
    for rank, e in enumerate(order, 1):
        m = e.metrics
        rows.append(
            [
                str(rank),
                e.name,
                fmt(m["macro_f1"]),
                _delta(e, entries, "macro_f1"),
                fmt(m["accuracy"]),
                _delta(e, entries, "accuracy"),
                pct(m["invalid_rate"]),
                fmt(m["n"]),
                *_cost_cells(e, usd_per_gpu_hour),
            ]
        )
    return table(cols, rows, row_class=_best(order, CLASSIFY_RANK), head_rows=2)


def _lines(entries: dict[str, Entry], task: str) -> str:
    items = []
    for e in ranked(entries, task):
        base = baseline_of(e, entries)
        vs = f" Δ against {base}." if base else ""
        items.append(f"<li><b>{esc(e.name)}</b>: {esc(describe(e.info, e.counts))}.{esc(vs)}</li>")
    return f"<ul class='models'>{''.join(items)}</ul>"


def _price_note(usd_per_gpu_hour: float | None, price_source: str) -> str:
    if usd_per_gpu_hour is None:
        return "No price per GPU hour is known (report.usd_per_gpu_hour): no cost is estimated."
    return (
        f"Cost: GPU hours x {usd_per_gpu_hour:.2f} USD per GPU hour ({price_source}); "
        "training on CPU has no GPU hours."
    )


def tables(entries: dict[str, Entry], usd_per_gpu_hour=None, price_source="") -> str:
    """The leaderboards (detection, classification) with one line per model under each."""
    body = ""
    if any(e.task == "detect" for e in entries.values()):
        body += "<h2 id='detection'>Detection</h2>" + detection_table(entries, usd_per_gpu_hour)
        body += _lines(entries, "detect")
    if any(e.task == "classify" for e in entries.values()):
        body += "<h2 id='classification'>Classification</h2>"
        body += classification_table(entries, usd_per_gpu_hour) + _lines(entries, "classify")
    body += f"<p class='muted'>{esc(_price_note(usd_per_gpu_hour, price_source))}</p>"
    return body


LEAD = (
    "Models ranked by mAP (COCO AP over IoU 0.5:0.95, then mAP50) and by macro-F1 for "
    "classification. A VLM gives no confidence: every predicted box scores 1.0, so mAP is one "
    "operating point per drawing and precision, recall and F1 at IoU 0.5 stand beside it."
)

# The first page of Snakemake's report shows the workflow description (report/workflow.rst,
# which includes this fragment) in a narrow column beside the rule graph: the leaderboard takes
# the page's width and the rule graph goes below it.
HOME_CSS = (
    ".items-center.h-screen:has(#drawtune-home) { align-items: flex-start; "
    "justify-content: flex-start; }\n"
    ".prose.max-w-lg:has(#drawtune-home) { max-width: none; }\n"
    ".grow.flex:has(#drawtune-home) { flex-direction: column; }\n"
    "#drawtune-home { max-width: 1180px; }\n"
    "#drawtune-home nav a { margin-right: 16px; }\n"
)


def home(entries: dict[str, Entry], note="", usd_per_gpu_hour=None, price_source="") -> str:
    """The leaderboard as the first page of Snakemake's report shows it (an HTML fragment that
    report/workflow.rst includes), with links to the report's other categories."""
    links = "".join(
        f"<a href=\"javascript:app.showCategory('{c.replace(' ', '%20')}')\">{esc(c[2:])}</a>"
        for c in CATEGORIES.values()
    )
    note_html = f"<p class='note'>{esc(note)}</p>" if note else ""
    return (
        f"<div class='drawtune' id='drawtune-home'><style>{CSS}{HOME_CSS}</style>"
        f"<h1>drawtune results</h1><p class='intro'>{esc(LEAD)}</p>{note_html}"
        f"{tables(entries, usd_per_gpu_hour, price_source)}"
        f"<nav class='sections'>More: {links}</nav></div>\n"
    )


def leaderboard_page(
    entries: dict[str, Entry], note="", usd_per_gpu_hour=None, price_source=""
) -> str:
    """The leaderboard as a page of its own, with each run's speed settings and, for several
    detection models, their per-class AP50 side by side."""
    body = f"<p class='note'>{esc(note)}</p>" if note else ""
    body += tables(entries, usd_per_gpu_hour, price_source)
    trained = [e for e in sorted(entries.values(), key=lambda e: e.name) if not e.untrained]
    if trained:
        rows = [
            [e.name, training_settings(e.telemetry), training_cost(e.telemetry)[2] or DASH]
            for e in trained
        ]
        body += "<h2 id='settings'>Training settings</h2>"
        body += table([Col("model"), Col("speed settings"), Col("device")], rows)
    detect = ranked(entries, "detect")
    if len(detect) > 1 and detect[0].metrics.get("per_class"):
        png = charts.per_class_ap({e.name: e.metrics["per_class"] for e in detect})
        body += "<h2 id='per-class'>Per-class AP50</h2>"
        body += figure(png, "AP at IoU 0.5 per class and model (best model first)")
    return page("Leaderboard", body, LEAD)
