"""Pictures and tables for Snakemake's HTML report."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from .convert import load_jsonl  # noqa: E402

PACKAGES = (
    "drawtune",
    "ms-swift",
    "torch",
    "torchvision",
    "transformers",
    "peft",
    "snakemake",
    "pycocotools",
    "qwen-vl-utils",
    "pillow",
)


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
    """The speed settings the training job ran with (drawtune.gpu_plan), in one line."""
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


def draw_predicted(d: ImageDraw.ImageDraw, boxes: list[dict]) -> None:
    """Predicted boxes (pixel ``bbox`` x1, y1, x2, y2) in red, labels at their bottom edge."""
    for b in boxes:
        x1, y1, x2, y2 = b["bbox"]
        d.rectangle([x1, y1, x2, y2], outline=(220, 0, 0), width=2)
        d.text((x1 + 2, max(0, y2 - 12)), b["label"], fill=(220, 0, 0))


def overlays(details_file, truth_file, out_dir, n: int, prefix: str = "") -> None:
    """The first ``n`` test drawings with truth (green) and predicted (red) boxes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = json.loads(Path(truth_file).read_text())
    cats = {c["id"]: c["name"] for c in truth["categories"]}
    details = {d["image"]: d for d in load_jsonl(details_file)}
    for img in truth["images"][:n]:
        im = Image.open(img["file_name"]).convert("RGB")
        d = ImageDraw.Draw(im)
        for a in truth["annotations"]:
            if a["image_id"] == img["id"]:
                x, y, w, h = a["bbox"]
                d.rectangle([x, y, x + w, y + h], outline=(0, 160, 0), width=2)
                d.text((x + 2, y + 2), cats[a["category_id"]], fill=(0, 160, 0))
        draw_predicted(d, details.get(img["file_name"], {}).get("boxes", []))
        im.save(out_dir / (prefix + Path(img["file_name"]).stem + ".png"))


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def accounting(
    summaries: list[dict], split_summary: dict | None, classify_splits: dict | None = None
) -> str:
    """Every input record accounted for: per dataset read = converted + rejected, then the
    split (duplicates rejected there), as an HTML table."""
    rows = "".join(
        f"<tr><td>{html.escape(str(s['dataset']))}</td><td>{s['read']}</td>"
        f"<td>{s['converted']}</td><td>{s['rejected']}</td></tr>"
        for s in summaries
    )
    total = [sum(s[k] for s in summaries) for k in ("read", "converted", "rejected")]
    rows += f"<tr><th>all</th><th>{total[0]}</th><th>{total[1]}</th><th>{total[2]}</th></tr>"
    text = (
        "<h3>Records</h3><table border='1'><tr><th>dataset</th><th>read</th><th>converted</th>"
        "<th>rejected</th></tr>" + rows + "</table>"
    )
    splits = {"detection": split_summary} if split_summary else {}
    splits.update({f"classification {k}": v for k, v in sorted((classify_splits or {}).items())})
    for name, sp in splits.items():
        text += (
            f"<p>{html.escape(name)} split: train {sp['train']}, val {sp['val']}, "
            f"test {sp['test']}; {sp['duplicates_rejected']} repeated images rejected.</p>"
        )
    return text + (
        "<p>Rejected records with their reasons: results/validated/&lt;dataset&gt;/rejects.jsonl"
        " and the rejects.jsonl beside each split.</p>"
    )


def provenance(config_text: str, data_files: list, out, records_html: str = "") -> None:
    """Config used, package versions and data hashes, as one HTML page."""
    versions = []
    for p in PACKAGES:
        try:
            versions.append((p, metadata.version(p)))
        except metadata.PackageNotFoundError:
            versions.append((p, "not installed"))
    vrows = "".join(f"<tr><td>{p}</td><td>{v}</td></tr>" for p, v in versions)
    drows = "".join(
        f"<tr><td>{html.escape(str(f))}</td><td><code>{_sha(f)}</code></td></tr>"
        for f in data_files
    )
    Path(out).write_text(
        "<html><body>"
        + records_html
        + "<h3>Configuration</h3><pre>"
        + html.escape(config_text)
        + "</pre>"
        "<h3>Package versions</h3><table border='1'>" + vrows + "</table>"
        "<h3>Data (sha256)</h3><table border='1'>" + drows + "</table></body></html>\n"
    )
