"""Training telemetry from ms-swift's logging.jsonl: per-interval rates, tokens/s, MFU, memory."""

from __future__ import annotations

import json

import pytest

from drawtune.report import charts
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
