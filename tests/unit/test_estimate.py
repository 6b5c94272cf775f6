"""`drawtune estimate`: training tokens counted on the converted data, GPU hours scaled from the
measured reference throughput, cost from the profile's hourly price."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT

from drawtune.coords import ResizeSpec, smart_resize
from drawtune.paths import THROUGHPUT
from drawtune.train.estimate import (
    EstimateError,
    estimate,
    gpu_kind,
    load_reference,
    model_parameters,
    sample_tokens,
    scaling_of,
    text_tokens,
)
from drawtune.train.tiny_model import build_tiny_model

REF = {
    "gpu": "H100",
    "params": 4_000_000_000,
    "tokens_per_sample": 1000,
    "samples_per_second": 4.0,
    "tuner": "lora",
}


def test_gpu_names_from_profiles():
    assert gpu_kind("NVIDIA_TESLA_A100") == "A100"
    assert gpu_kind("NVIDIA_H100_80GB") == "H100"
    assert gpu_kind("nvidia_l4") == "L4"
    assert gpu_kind("h200") == "H200"
    with pytest.raises(EstimateError, match="unknown GPU 'TPU_V5'"):
        gpu_kind("TPU_V5")


def test_parameters_counted_from_safetensors_and_hub_names(tmp_path):
    summary = build_tiny_model("qwen3_vl", tmp_path / "m")
    assert model_parameters(str(tmp_path / "m")) == summary["parameters"]
    assert model_parameters("Qwen/Qwen3-VL-4B-Instruct") == 4_000_000_000
    assert model_parameters("Qwen/Qwen2.5-VL-7B-Instruct") == 7_000_000_000
    assert model_parameters("Qwen/Qwen3-VL-30B-A3B-Instruct") == 30_000_000_000
    with pytest.raises(EstimateError, match="--params-b"):
        model_parameters("acme/drawing-detector")


def test_hours_scale_with_gpu_tuner_size_and_count():
    kw = dict(experiment="e", samples=3600, epoch_tokens=3600 * 1000, epochs=1, reference=REF)
    same = estimate(params=4e9, tuner="lora", gpu="H100", **kw)
    assert same.wall_hours == pytest.approx(3600 / 4.0 / 3600, abs=1e-3)  # 0.25 h
    a100 = estimate(params=4e9, tuner="lora", gpu="NVIDIA_TESLA_A100", **kw)
    assert a100.wall_hours == pytest.approx(0.25 * 989 / 312, abs=1e-3)
    full = estimate(params=4e9, tuner="full", gpu="H100", **kw)
    assert full.wall_hours == pytest.approx(0.375, abs=1e-3)
    big = estimate(params=8e9, tuner="lora", gpu="H100", **{**kw, "epochs": 2})
    assert big.tokens == 7_200_000 and big.wall_hours == pytest.approx(1.0, abs=1e-3)
    two = estimate(params=4e9, tuner="lora", gpu="H100", gpus=2, usd_per_hour=10.0, **kw)
    assert two.wall_hours == pytest.approx(0.25 / 1.8, abs=1e-3)
    assert two.gpu_hours == pytest.approx(2 * two.wall_hours, abs=1e-3)
    assert two.usd == pytest.approx(two.wall_hours * 10.0, abs=0.01)


def test_a_measured_scaling_replaces_the_assumed_one(tmp_path):
    """bench/gpu_scaling.py --adopt writes the measured ZeRO-2 efficiency into the reference;
    the estimate then uses it for several GPUs (one GPU is never scaled)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_scaling", ROOT / "bench/gpu_scaling.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = {"device": "NVIDIA H200", "runs": {"one": {"samples_per_s": 10.0},
           "zero2": {"samples_per_s": 16.0}, "zero3": {"samples_per_s": 12.0}}}  # fmt: skip
    bench.efficiencies(res)
    assert res["runs"]["zero2"]["scaling_efficiency"] == 0.8
    assert res["runs"]["zero3"]["scaling_efficiency"] == 0.6
    assert "scaling_efficiency" not in res["runs"]["one"]
    (tmp_path / "scaling.json").write_text(json.dumps(res))
    (tmp_path / "ref.json").write_text(json.dumps(REF))
    bench.adopt(tmp_path / "scaling.json", tmp_path / "ref.json")
    ref = load_reference(tmp_path / "ref.json")
    assert ref["scaling"]["efficiency"] == 0.8 and "H200" in ref["scaling"]["source"]
    assert scaling_of(REF) == (0.9, "assumed (bench/gpu_scaling.py measures it)")
    assert scaling_of(ref)[0] == 0.8 and scaling_of(ref)[1].startswith("measured")
    kw = dict(experiment="e", samples=3600, epoch_tokens=3600 * 1000, epochs=1, params=4e9)
    two = estimate(tuner="lora", gpu="H100", gpus=2, reference=ref, **kw)
    assert two.wall_hours == pytest.approx(0.25 / 1.6, abs=1e-3)
    assert two.scaling_efficiency == 0.8
    one = estimate(tuner="lora", gpu="H100", gpus=1, reference=ref, **kw)
    assert one.wall_hours == pytest.approx(0.25, abs=1e-3) and one.scaling_efficiency == 1.0
    with pytest.raises(EstimateError, match="scaling.efficiency"):
        bad = {**REF, "scaling": {"efficiency": "x"}}
        estimate(tuner="lora", gpu="H100", gpus=2, reference=bad, **kw)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"device": "x", "runs": {"one": {"samples_per_s": 1.0}}}))
    with pytest.raises(SystemExit, match="no measured zero2"):
        bench.adopt(empty, tmp_path / "ref.json")


def test_reference_is_the_benchmarked_setting():
    ref = load_reference(THROUGHPUT)
    assert ref["gpu"] == "H200" and ref["samples_per_second"] > 0
    assert str(ref["samples_per_second"]) in (ROOT / "BENCHMARKS.md").read_text()


def test_sample_tokens_count_text_and_visual_tokens():
    w, h = 700, 500
    rw, rh = smart_resize(w, h, ResizeSpec(max_pixels=200704, factor=32))
    manifest = {"a.png": {"image": "a.png", "resized_width": rw, "resized_height": rh}}
    short = {
        "messages": [
            {"role": "user", "content": "<image>Find views."},
            {"role": "assistant", "content": "[]"},
        ],
        "images": ["a.png"],
    }
    n = sample_tokens(short, manifest, "qwen3_vl")
    assert n - (rw // 32) * (rh // 32) - 2 == 24 + text_tokens("Find views.") + text_tokens("[]")
    extra = ' {"bbox_2d": [1, 2, 3, 4], "label": "view"}'
    longer = json.loads(json.dumps(short))
    longer["messages"][1]["content"] += extra
    grown = sample_tokens(longer, manifest, "qwen3_vl") - n
    assert grown == text_tokens("[]" + extra) - text_tokens("[]")


def _estimate(wd, *args):
    return subprocess.run(
        [str(BIN / "drawtune"), "estimate", *args], cwd=wd, capture_output=True, text=True
    )


def test_estimate_command_on_converted_data(tmp_path):
    from drawtune.data.synth import write_dataset

    write_dataset(tmp_path / "data", n=6, seed=1, width=320)
    out = tmp_path / "results/swift"  # `drawtune convert` creates the folders
    conv = subprocess.run(
        [str(BIN / "drawtune"), "convert", "--input", "data/annotations.json", "--family",
         "qwen3_vl", "--out", "results/swift/r8/train.jsonl",
         "--manifest", "results/swift/r8/train.manifest.jsonl"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert conv.returncode == 0, conv.stderr
    shutil.copytree(out / "r8", out / "ft")  # each experiment has its own converted data
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["model"]["base"] = "Qwen/Qwen3-VL-4B-Instruct"
    cfg["experiments"] = {"r8": {"tuner": "lora", "epochs": 3}, "ft": {"tuner": "full"}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    prof = tmp_path / "profiles/vertex"
    prof.mkdir(parents=True)
    machine = {
        "accelerator_type": "NVIDIA_TESLA_A100",
        "accelerator_count": 2,
        "replica_count": 1,
        "usd_per_hour": 7.5,
    }
    (prof / "vertex.yaml").write_text(yaml.safe_dump({"machines": {"train_adapter": machine}}))

    p = _estimate(tmp_path, "--profile", "profiles/vertex", "--json")
    assert p.returncode == 0, p.stderr
    rows = {r["experiment"]: r for r in json.loads(p.stdout)}
    assert set(rows) == {"r8", "ft"}
    r8, ft = rows["r8"], rows["ft"]
    assert r8["samples"] == 6 and r8["gpu"] == "A100" and r8["gpus"] == 2
    assert r8["params"] == 4_000_000_000
    assert r8["tokens"] == 3 * ft["tokens"]  # ft trains the default single epoch
    assert r8["usd"] == pytest.approx(r8["wall_hours"] * 7.5, abs=0.01)
    text = _estimate(tmp_path, "--gpu", "L4").stdout
    assert "r8" in text and "L4" in text and "USD" in text

    missing = _estimate(tmp_path, "--data", "nowhere")
    assert missing.returncode == 2 and "snakemake nowhere/ft/train.jsonl" in missing.stderr
    assert Path(tmp_path / "results/swift/r8/train.jsonl").is_file()
