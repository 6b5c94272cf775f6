"""Experiments with their own model, image size and prompt, and classification datasets, in
one workflow and one report (issue 8, parts 1 and 2), on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import BIN, copy_workflow, make_user_dataset, planned_jobs, snakemake, tiny_config

from drawtune.coords import ResizeSpec
from drawtune.data.convert import answer_text
from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow

Q25_PROMPT = "Find the views, sections and notes."
Q25_MAX_PIXELS = 50176


def mixed_config() -> dict:
    cfg = tiny_config("data/drawings/annotations.json")
    cfg["datasets"]["sheets"] = {
        "task": "classify",
        "format": "csv",
        "annotations": "resources/synth-classify/sheets/labels.csv",
        "synthetic": {"n": 16, "seed": 2, "width": 256},
    }
    short = {"tuner": "full", "learning_rate": 0.001, "epochs": 1, "batch_size": 2}
    cfg["experiments"] = {
        # its own base model family, image size and prompt
        "q25": {
            **short,
            "family": "qwen2_5_vl",
            "max_pixels": Q25_MAX_PIXELS,
            "prompt": Q25_PROMPT,
            # W&B beside TensorBoard, off-line: no network, no account (issue 20)
            "report_to": ["tensorboard", "wandb"],
        },
        "sheet_type": {**short, "task": "classify", "dataset": "sheets"},
        "sheet_base": {"task": "classify", "dataset": "sheets", "tuner": "none"},
    }
    return cfg


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("mixed") / "drawtune")
    make_user_dataset(wd / "data" / "drawings", n=12)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(mixed_config(), sort_keys=False))
    snakemake(wd)
    return wd


def test_experiment_uses_its_own_family_image_size_and_prompt(mixed):
    wd = mixed
    assert (wd / "resources/models/tiny-qwen2_5_vl/config.json").is_file()
    assert (wd / "resources/models/tiny-qwen3_vl/config.json").is_file()  # base's
    records = {r["image"]: r for r in load_jsonl(wd / "results/splits/test.jsonl")}
    spec = ResizeSpec(min_pixels=3136, max_pixels=Q25_MAX_PIXELS)
    q25 = load_jsonl(wd / "results/swift/q25/test.jsonl")
    base = load_jsonl(wd / "results/swift/base/test.jsonl")
    global_prompt = yaml.safe_load((wd / "config/config.yaml").read_text())["prompt"]
    assert len(q25) == len(base) == len(records) > 0
    for row, brow in zip(q25, base, strict=True):
        rec = records[row["images"][0]]
        assert row["messages"][0]["content"] == "<image>" + Q25_PROMPT
        assert brow["messages"][0]["content"] == "<image>" + global_prompt
        # absolute pixels of the image resized under the experiment's own max_pixels
        want = answer_text(rec["boxes"], "qwen2_5_vl", rec["width"], rec["height"], spec)
        assert row["messages"][1]["content"] == want
        base_spec = ResizeSpec(min_pixels=3136, max_pixels=200704)
        want = answer_text(rec["boxes"], "qwen3_vl", rec["width"], rec["height"], base_spec)
        assert brow["messages"][1]["content"] == want
    for m in load_jsonl(wd / "results/swift/q25/test.manifest.jsonl"):
        assert m["resized_width"] * m["resized_height"] <= Q25_MAX_PIXELS
        assert (m["frame_width"], m["frame_height"]) == (m["resized_width"], m["resized_height"])
    args = json.loads((wd / "results/train/q25/run/args.json").read_text())
    assert args["model_type"] == "qwen2_5_vl" and args["model"].endswith("tiny-qwen2_5_vl")
    metrics = json.loads((wd / "results/metrics/q25/test.json").read_text())
    assert metrics["n_images"] == len(records)


def test_wandb_logs_off_line_beside_the_checkpoints(mixed):
    """report_to: [tensorboard, wandb] on a machine without network or W&B account: the real
    swift sft logs an offline W&B run in the run folder (`wandb sync` uploads it later) and
    TensorBoard's event files as before."""
    runs = list((mixed / "results/train/q25/run/wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    records = list(runs[0].glob("run-*.wandb"))
    assert records and b"train/loss" in records[0].read_bytes()
    assert list((mixed / "results/train/q25/tensorboard").rglob("events.out.tfevents*"))
    args = json.loads((mixed / "results/train/q25/run/args.json").read_text())
    assert args["report_to"] == ["tensorboard", "wandb"]
    assert not (mixed / "results/train/sheet_type/run/wandb").exists()  # tensorboard only


def test_classification_data_metrics_and_report(mixed):
    wd = mixed
    summary = json.loads((wd / "results/validated/sheets/summary.json").read_text())
    assert summary["read"] == 16 == summary["converted"] + summary["rejected"]
    splits = {
        s: load_jsonl(wd / f"results/splits/classify/sheets/{s}.jsonl")
        for s in ("train", "val", "test")
    }
    split_summary = json.loads((wd / "results/splits/classify/sheets/summary.json").read_text())
    assert sum(map(len, splits.values())) + split_summary["duplicates_rejected"] == 16
    classes = sorted({r["label"] for s in splits.values() for r in s})
    assert len(classes) >= 2
    train = load_jsonl(wd / "results/swift/sheet_type/train.jsonl")
    assert [r["messages"][1]["content"] for r in train] == [r["label"] for r in splits["train"]]
    assert all(c in train[0]["messages"][0]["content"] for c in classes)  # prompt lists them
    for model in ("sheet_type", "sheet_base"):
        m = json.loads((wd / f"results/metrics/{model}/test.json").read_text())
        assert m["n"] == len(splits["test"])
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
        assert set(m["per_class"]) == set(classes)
        assert sum(map(sum, m["confusion"]["matrix"])) == m["n"]
        details = load_jsonl(wd / f"results/metrics/{model}/test.details.jsonl")
        assert [d["image"] for d in details] == [r["image"] for r in splits["test"]]
        page = (wd / f"results/report/models/{model}.html").read_text()
        assert "<section id='confusion'><h2>Confusion matrix</h2><figure><img" in page
        assert "<section id='per-class-prf'>" in page
    assert not (wd / "results/train/sheet_base").exists()  # tuner none: scored untrained
    assert not (wd / "results/merged/sheet_base").exists()
    table = (wd / "results/report/metrics.html").read_text()
    assert "Detection</h2>" in table and "Classification</h2>" in table
    for name in ("base", "q25", "sheet_type", "sheet_base"):
        assert f"<th>{name}</th>" in table
    assert "macro-F1" in table and table.count(">untrained<") == 2
    assert "Δ against sheet_base." in table  # the same base model, untrained, on that task
    gallery = (wd / "results/report/gallery/sheet_type.html").read_text()
    assert "test drawings answered wrong" in gallery or "Every test drawing" in gallery
    compare = (wd / "results/report/compare.html").read_text()
    assert '"sheet_type"' in compare and '"macro_f1"' in compare and "confusion matrix" in compare
    prov = (wd / "results/report/provenance.html").read_text()
    assert "classification sheets split" in prov
    assert planned_jobs(wd) == []


def _variant(wd, tmp_path, change: dict):
    f = tmp_path / "variant.yaml"
    f.write_text(yaml.safe_dump(change))
    return planned_jobs(wd, "--configfile", "config/config.yaml", str(f))


def test_adding_one_experiment_runs_only_it(mixed, tmp_path):
    cfg = mixed_config()
    extra = {**cfg["experiments"]["sheet_type"], "learning_rate": 0.002}
    jobs = _variant(mixed, tmp_path, {"experiments": {**cfg["experiments"], "sheet_lr2": extra}})
    assert sorted(jobs) == sorted(
        [
            *["convert_annotations"] * 3,
            "train_adapter",
            "merge_adapter",
            "predict_split",
            "score_classification",
            "report_leaderboard",
            "report_compare",
            "report_model",  # the new experiment's page only
            "report_provenance",  # the config page: the config changed
            "all",
        ]
    )


def test_global_prompt_change_spares_experiments_with_their_own(mixed, tmp_path):
    jobs = _variant(mixed, tmp_path, {"prompt": "Find everything."})
    # base is converted again (its test split) and scored; q25 has its own prompt and the
    # classification experiments use their dataset's: nothing of theirs reruns
    assert jobs.count("convert_annotations") == 2  # base's validation and test splits
    assert "train_adapter" not in jobs and "merge_adapter" not in jobs
    assert jobs.count("predict_split") == 2 and jobs.count("score_detections") == 1


def test_predict_and_estimate_commands_follow_the_experiment(mixed):
    wd = mixed
    image = load_jsonl(wd / "results/splits/classify/sheets/test.jsonl")[0]["image"]
    cli = [sys.executable, "-m", "drawtune.cli"]
    p = subprocess.run(
        [*cli, "predict", image, "--experiment", "sheet_type", "--out", "adhoc"],
        cwd=wd,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads(p.stdout.strip().splitlines()[0])
    assert set(row) == {"image", "parsed", "label"}  # a class, no boxes
    p = subprocess.run(
        [str(BIN / "drawtune"), "estimate", "--json"], cwd=wd, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr[-3000:]
    rows = {r["experiment"]: r for r in json.loads(p.stdout)}
    assert sorted(rows) == ["q25", "sheet_type"]  # sheet_base trains nothing
    assert rows["q25"]["samples"] == len(load_jsonl(wd / "results/swift/q25/train.jsonl"))
