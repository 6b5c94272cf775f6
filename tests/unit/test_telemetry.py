"""Training telemetry from ms-swift's logging.jsonl: per-interval rates, tokens/s, MFU, memory."""

from __future__ import annotations

import json

import pytest

from drawtune.report import charts, tables
from drawtune.train import telemetry


def _row(step, mean_s_per_it, **kw):
    return {"loss": 1.0 / step, "learning_rate": 1e-4, "grad_norm": 0.5,
            "global_step/max_steps": f"{step}/10", "train_speed(s/it)": mean_s_per_it,
            "remaining_time": "1m", **kw}  # fmt: skip


LOG = [
    _row(2, 5.0, **{"memory(GiB)": 30.5}),  # 10 s for the first 2 steps (warm-up)
    {"eval_loss": 0.9, "global_step/max_steps": "2/10"},
    _row(4, 3.0, **{"memory(GiB)": 31.0}),  # 12 s at step 4: 2 s for steps 3-4
]


def test_rates_are_per_interval_and_mfu_uses_the_gpu_peak():
    rows = telemetry.steps(
        LOG, samples_per_step=8, tokens_per_sample=1000, params=4_000_000_000,
        tuner="lora", peak=989.0, gpus=1,
    )  # fmt: skip
    assert [r["step"] for r in rows] == [2, 4]  # the eval row is not a training step
    assert rows[0]["samples_per_s"] == pytest.approx(16 / 10)
    assert rows[1]["samples_per_s"] == pytest.approx(16 / 2)
    assert rows[1]["tokens_per_s"] == pytest.approx(8000)
    assert rows[1]["mfu"] == pytest.approx(8000 * 4 * 4e9 / 989e12, abs=1e-4)
    assert rows[1]["peak_memory_gib"] == 31.0
    full = telemetry.steps(
        LOG, samples_per_step=8, tokens_per_sample=1000, params=4_000_000_000,
        tuner="full", peak=989.0, gpus=2,
    )  # fmt: skip
    assert full[1]["mfu"] == pytest.approx(rows[1]["mfu"] * 6 / 4 / 2, abs=1e-4)
    cpu = telemetry.steps(
        LOG, samples_per_step=8, tokens_per_sample=1000, params=1, tuner="full", peak=None
    )
    assert cpu[1]["mfu"] is None and cpu[1]["tokens_per_s"] == pytest.approx(8000)
    text = telemetry.table(rows)
    assert "MFU" in text.splitlines()[0] and "12.9%" in text


def test_peak_of_device_names():
    assert telemetry.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert telemetry.peak_tflops("NVIDIA A100-SXM4-40GB") == 312.0
    assert telemetry.peak_tflops(None) is None
    assert telemetry.peak_tflops("Some Future GPU") is None


def test_telemetry_chart_draws_every_panel(tmp_path):
    rows = telemetry.steps(
        LOG, samples_per_step=8, tokens_per_sample=1000, params=4_000_000_000,
        tuner="lora", peak=None,
    )  # fmt: skip
    f = tmp_path / "t.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "t.png"
    charts.telemetry_chart({"a": f}, out)
    assert out.stat().st_size > 10_000


def test_leaderboard_ranks_by_map_with_training_time_and_gpu_hours(tmp_path):
    keys = ("map75", "precision50", "recall50", "f1_50", "n_unparseable")
    m = {k: 0 for k in keys}
    metrics = {
        "base": {**m, "map": 0.0, "map50": 0.0, "n_images": 10, "n_unparseable": 10},
        "small": {**m, "map": 0.3, "map50": 0.5, "n_images": 10},
        "big": {**m, "map": 0.5, "map50": 0.7, "n_images": 10},
    }
    tele = {}
    for name, device, gpus, secs in (("small", "cpu", 1, 90), ("big", "NVIDIA H100", 2, 3600)):
        f = tmp_path / f"{name}.jsonl"
        row = {"step": 1, "elapsed_s": secs, "device": device, "gpus": gpus}
        if name == "big":  # what drawtune.train.gpu_plan chose, kept on the first telemetry row
            row["settings"] = {
                "batch_size": 8, "grad_accum": 2, "gradient_checkpointing": False,
                "dataloader_workers": 8, "liger": True, "lora_dtype": "bfloat16",
                "predicted_gib": 97.6, "gpu_gib": 139.8,
            }  # fmt: skip
        f.write_text(json.dumps(row) + "\n")
        tele[name] = f
    out = tmp_path / "t.html"
    tables.metrics_table(metrics, out, telemetry=tele)
    html = out.read_text()
    assert html.index("<th>big</th>") < html.index("<th>small</th>") < html.index("<th>base</th>")
    assert "<td>60.0 min</td><td>2.000</td>" in html  # 1 h on 2 GPUs
    assert "<td>1.5 min</td><td>-</td><td>-</td>" in html  # CPU: no GPU hours, no settings
    assert (
        "<td>micro-batch 8 x 2, no checkpointing, 8 workers, Liger, LoRA bfloat16, "
        "planned 98 of 140 GiB</td>" in html
    )
    assert "<th>training settings</th>" in html
    assert "<td>untrained</td>" in html and "<td>100.0%</td>" in html


def test_compare_page_holds_every_model_and_picture(tmp_path):
    from PIL import Image

    keys = ("map75", "precision50", "recall50", "f1_50", "n_unparseable")
    metrics = {
        "base": {**dict.fromkeys(keys, 0), "map": 0.0, "map50": 0.0},
        "r8": {**dict.fromkeys(keys, 1), "map": 0.4, "map50": 0.6},
    }
    ov = tmp_path / "overlays"
    ov.mkdir()
    for m in metrics:
        for d in ("sheet_1", "sheet_2"):
            Image.new("RGB", (8, 8), "white").save(ov / f"{m}__{d}.png")
    out = tmp_path / "compare.html"
    tables.compare_page(metrics, ov, out)
    page = out.read_text()
    start = page.index("id='data'>") + len("id='data'>")
    data = json.loads(page[start : page.index("</script>", start)])
    assert data["models"] == ["r8", "base"]  # best first
    assert data["drawings"] == ["sheet_1", "sheet_2"]
    assert data["metrics"]["r8"]["map50"] == 0.6
    assert data["pictures"]["base"]["sheet_2"].startswith("data:image/png;base64,")


def test_classification_leaderboard_ranks_by_macro_f1(tmp_path):
    def cls(acc, f1, invalid):
        per = {"a": {"precision": 0.5, "recall": 1.0}, "b": {"precision": 1.0, "recall": 0.25}}
        return {"accuracy": acc, "macro_f1": f1, "n": 8, "n_invalid": invalid,
                "invalid_rate": invalid / 8, "per_class": per}  # fmt: skip

    classify = {"zero_shot": cls(0.5, 0.3, 4), "lora": cls(0.75, 0.7, 0), "full": cls(0.9, 0.6, 0)}
    out = tmp_path / "t.html"
    tables.metrics_table({}, out, classify=classify, untrained=("zero_shot",))
    html = out.read_text()
    assert "<h3>Detection</h3>" not in html and "<h3>Classification</h3>" in html
    # macro-F1 ranks, not accuracy: lora (0.7) before full (0.6) before zero_shot (0.3)
    order = [html.index(f"<th>{n}</th>") for n in ("lora", "full", "zero_shot")]
    assert order == sorted(order)
    assert "<td>untrained</td>" in html and "a P 0.50 R 1.00; b P 1.00 R 0.25" in html


def test_a_resumed_runs_repeated_steps_appear_once():
    """Interrupted after logging steps 1-3 with a checkpoint at step 2; the resumed run logs 3
    and 4 again: the rows of the run that went on are kept, once each (issue 16, item 11)."""

    def row(step, loss, **extra):
        return {"loss": loss, "global_step/max_steps": f"{step}/4", **extra}

    rows = [
        row(1, 0.9),
        row(2, 0.8),
        {"eval_loss": 0.85, "global_step/max_steps": "2/4"},
        row(3, 0.7),
        row(3, 0.71),  # resumed from checkpoint-2
        row(4, 0.6),
        {"eval_loss": 0.65, "global_step/max_steps": "4/4"},
        {"train_runtime": 10.0, "global_step/max_steps": "4/4"},
    ]
    kept = telemetry.last_of_each_step(rows)
    assert [(r["global_step/max_steps"], r.get("loss")) for r in kept if "loss" in r] == [
        ("1/4", 0.9),
        ("2/4", 0.8),
        ("3/4", 0.71),
        ("4/4", 0.6),
    ]
    assert len(kept) == len(rows) - 1
