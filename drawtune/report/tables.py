"""The report's tables: the leaderboard of every model (detection and classification) and the
page that compares any two models."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..jsonio import load_jsonl


def training_cost(telemetry_file) -> tuple[float | None, float | None]:
    """(training seconds, GPU hours) of one experiment from its telemetry; GPU hours are None
    when it trained on CPU."""
    rows = load_jsonl(telemetry_file) if telemetry_file else []
    if not rows:
        return None, None
    last = rows[-1]
    secs = last.get("elapsed_s")
    if secs is None or last.get("device", "cpu") == "cpu":
        return secs, None
    return secs, secs * last.get("gpus", 1) / 3600


def training_settings(telemetry_file) -> str:
    """The speed settings the training job ran with (drawtune.train.gpu_plan), in one line."""
    rows = load_jsonl(telemetry_file) if telemetry_file else []
    s = rows[0].get("settings") if rows else None
    if not s:
        return "-"
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
    return html.escape(", ".join(parts))


def _cost_cells(name: str, telemetry: dict, untrained: bool) -> str:
    secs, gpu_h = training_cost(telemetry.get(name))
    t = "untrained" if untrained else ("-" if secs is None else f"{secs / 60:.1f} min")
    g = "-" if gpu_h is None else f"{gpu_h:.3f}"
    settings = "-" if untrained else training_settings(telemetry.get(name))
    return f"<td>{t}</td><td>{g}</td><td>{settings}</td>"


DETECT_COLS = (
    "map",
    "map50",
    "map75",
    "precision50",
    "recall50",
    "f1_50",
    "n_images",
    "n_unparseable",
)
CLASSIFY_COLS = ("accuracy", "macro_f1", "n", "n_invalid", "invalid_rate")


def _unparseable_rate(m: dict) -> str:
    return f"{m['n_unparseable'] / m['n_images'] if m['n_images'] else 0.0:.1%}"


def _per_class_pr(m: dict) -> str:
    return "; ".join(
        f"{html.escape(c)} P {v['precision']:.2f} R {v['recall']:.2f}"
        for c, v in m["per_class"].items()
    )


def _leaderboard(title, metrics, rank_by, cols, telemetry, untrained, before=(), after=()):
    """One ranked HTML table: metric columns, derived columns (``(header, fn)``) before and
    after the training time and GPU hours."""
    order = sorted(metrics, key=lambda n: (*(-metrics[n][k] for k in rank_by), n))
    rows = []
    for rank, name in enumerate(order, 1):
        m = metrics[name]
        cells = "".join(f"<td>{m[c]}</td>" for c in cols)
        cells += "".join(f"<td>{fn(m)}</td>" for _, fn in before)
        cells += _cost_cells(name, telemetry, name in untrained)
        cells += "".join(f"<td>{fn(m)}</td>" for _, fn in after)
        rows.append(f"<tr><td>{rank}</td><th>{html.escape(name)}</th>{cells}</tr>")
    heads = ("#", "model", *cols, *(h for h, _ in before), "training time", "GPU hours",
             "training settings")  # fmt: skip
    head = "".join(f"<th>{c}</th>" for c in (*heads, *(h for h, _ in after)))
    return (
        f"<h3>{title}</h3><table border='1' cellpadding='4'><tr>{head}</tr>{''.join(rows)}</table>"
    )


def metrics_table(
    metrics: dict,
    out,
    note: str = "",
    telemetry: dict | None = None,
    classify: dict | None = None,
    untrained=("base",),
) -> None:
    """The leaderboard: one row per model, best mAP first, with training time and GPU hours;
    classification models in a second table, best macro-F1 first."""
    telemetry = telemetry or {}
    body = f"<p>{html.escape(note)}</p>" if note else ""
    if metrics:
        body += _leaderboard(
            "Detection",
            metrics,
            ("map", "map50"),
            DETECT_COLS,
            telemetry,
            untrained,
            before=[("unparseable rate", _unparseable_rate)],
        )
    if classify:
        body += _leaderboard(
            "Classification",
            classify,
            ("macro_f1", "accuracy"),
            CLASSIFY_COLS,
            telemetry,
            untrained,
            after=[("per class", _per_class_pr)],
        )
    Path(out).write_text(f"<html><body>{body}</body></html>\n")


COMPARE_KEYS = ("map", "map50", "map75", "precision50", "recall50", "f1_50", "n_unparseable")
COMPARE_CLASSIFY_KEYS = ("accuracy", "macro_f1", "n_invalid", "invalid_rate")

_COMPARE_JS = """
const D = JSON.parse(document.getElementById('data').textContent);
const fmt = v => (typeof v === 'number' && !Number.isInteger(v)) ? v.toFixed(4) : String(v);
function show() {
  const a = document.getElementById('a').value, b = document.getElementById('b').value;
  let t = '<tr><th>metric</th><th>' + a + '</th><th>' + b + '</th><th>' + b + ' - ' + a +
    '</th></tr>';
  for (const k of D.keys) {
    const x = D.metrics[a][k], y = D.metrics[b][k];
    if (x === undefined && y === undefined) continue;
    const diff = (x === undefined || y === undefined) ? '-' : fmt(y - x);
    t += '<tr><td>' + k + '</td><td>' + fmt(x ?? '-') + '</td><td>' + fmt(y ?? '-') +
      '</td><td>' + diff + '</td></tr>';
  }
  document.getElementById('table').innerHTML = t;
  let p = '';
  for (const d of D.drawings) {
    p += '<h4>' + d + '</h4><div style="display:flex;gap:8px">';
    for (const m of [a, b]) {
      const src = (D.pictures[m] || {})[d];
      p += '<figure style="margin:0"><figcaption>' + m + '</figcaption>' +
        (src ? '<img style="max-width:480px" src="' + src + '">' : '(no picture)') + '</figure>';
    }
    p += '</div>';
  }
  document.getElementById('pictures').innerHTML = p;
}
for (const id of ['a', 'b']) {
  const s = document.getElementById(id);
  D.models.forEach(m => s.add(new Option(m, m)));
  s.onchange = show;
}
document.getElementById('b').selectedIndex = D.models.length > 1 ? 1 : 0;
show();
"""


def compare_page(metrics: dict, overlays_dir, out, pictures=None) -> None:
    """One self-contained page where the reader picks any two models and sees their metrics
    (with the difference) and their pictures side by side: overlays of the same test drawings
    for detection models, the confusion matrix for classification models."""
    models = sorted(metrics, key=lambda n: (-metrics[n].get("map", -1), n))
    pictures_by: dict[str, dict[str, str]] = {}
    drawings: set[str] = set()
    for f in sorted(Path(overlays_dir).glob("*__*.png")):
        model, name = f.stem.split("__", 1)
        data = base64.b64encode(f.read_bytes()).decode()
        pictures_by.setdefault(model, {})[name] = f"data:image/png;base64,{data}"
        drawings.add(name)
    for f in sorted(Path(pictures).glob("*.png")) if pictures else []:
        data = base64.b64encode(f.read_bytes()).decode()
        pictures_of = pictures_by.setdefault(f.stem, {})
        pictures_of["confusion matrix"] = f"data:image/png;base64,{data}"
        drawings.add("confusion matrix")
    data = {
        "models": models,
        "keys": [*COMPARE_KEYS, *COMPARE_CLASSIFY_KEYS],
        "metrics": {
            m: {
                k: metrics[m][k] for k in (*COMPARE_KEYS, *COMPARE_CLASSIFY_KEYS) if k in metrics[m]
            }
            for m in models
        },
        "drawings": sorted(drawings),
        "pictures": pictures_by,
    }
    payload = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    Path(out).write_text(
        "<html><body><p>Compare <select id='a'></select> with <select id='b'></select></p>"
        "<table id='table' border='1' cellpadding='4'></table><div id='pictures'></div>"
        f"<script type='application/json' id='data'>{payload}</script>"
        f"<script>{_COMPARE_JS}</script></body></html>\n"
    )
