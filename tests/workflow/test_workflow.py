"""The whole workflow on the tiny model, and what a change reruns (dry runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, planned_jobs, snakemake

from drawtune.data.synth import write_dataset
from drawtune.eval.score import DETECTION_KEYS
from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow


def test_default_config_dry_run(tmp_path):
    """The shipped config and local profile plan every stage, from synthetic data on."""
    wd = copy_workflow(tmp_path / "wf")
    jobs = planned_jobs(wd)
    for rule in (
        "synth_drawings",
        "build_tiny_model",
        "validate_annotations",
        "split_dataset",
        "convert_annotations",
        "train_adapter",
        "merge_adapter",
        "predict_split",
        "score_detections",
        "synth_classify",
        "split_classify",
        "score_classification",
        "report_leaderboard",
        "report_compare",
        "report_model",
        "report_data",
        "report_provenance",
    ):
        assert rule in jobs, rule
    # the detection experiment and the untrained base (validation and test splits: box scores
    # and their threshold) and the classification experiment (test)
    assert jobs.count("predict_split") == 5
    assert jobs.count("calibrate_scores") == 2 and "report_confidence" in jobs


def test_whole_run_outputs(finished_workflow):
    wd = finished_workflow
    for model in ("demo", "base"):
        metrics = json.loads((wd / f"results/metrics/{model}/test.json").read_text())
        assert tuple(sorted(metrics)) == tuple(sorted(DETECTION_KEYS))
        test_rows = load_jsonl(wd / f"results/swift/{model}/test.jsonl")
        assert metrics["n_images"] == len(test_rows) > 0
        preds = load_jsonl(wd / f"results/predictions/{model}/test.jsonl")
        # swift infer returns rows in input order
        assert [p["images"][0]["path"] for p in preds] == [r["images"][0] for r in test_rows]
    # trained outputs
    assert (wd / "results/train/demo/adapter/model.safetensors").is_file()
    assert (wd / "results/merged/demo/config.json").is_file()
    losses = [r["loss"] for r in load_jsonl(wd / "results/train/demo/logging.jsonl") if "loss" in r]
    assert losses
    # telemetry per logging step: rates on CPU, no MFU/memory without a GPU; table in the log
    tele = load_jsonl(wd / "results/train/demo/telemetry.jsonl")
    assert [t["loss"] for t in tele] == losses
    assert all(t["tokens_per_s"] > 0 and t["samples_per_s"] > 0 for t in tele)
    assert all(t["mfu"] is None for t in tele)
    assert "tok/s" in (wd / "logs/train_adapter/demo.log").read_text()
    assert list((wd / "results/train/demo/tensorboard").rglob("events.out.tfevents*"))
    # nothing lost: every record read is in a split or a rejects file
    summary = json.loads((wd / "results/validated/drawings/summary.json").read_text())
    assert summary == {"dataset": "drawings", "read": 21, "converted": 20, "rejected": 1}
    rejects = load_jsonl(wd / "results/validated/drawings/rejects.jsonl")
    assert rejects[0]["field"] == "file_name" and "does not exist" in rejects[0]["reason"]
    n_split = sum(
        len(load_jsonl(wd / f"results/splits/{s}.jsonl")) for s in ("train", "val", "test")
    )
    assert n_split == 20
    # nothing left to do
    assert planned_jobs(wd) == []


def test_report_builds(finished_workflow, built_report):
    """The report's pages exist and say what they should (tests/workflow/test_report_browser.py
    opens them in a browser)."""
    wd = finished_workflow
    html = built_report.read_text(errors="replace")
    assert len(html) > 10_000
    assert "drawtune-home" in html  # the leaderboard is the first page's description
    home = (wd / "results/report/home.html").read_text()
    assert "<th>base</th>" in home and "<th>demo</th>" in home and "randomly initialised" in home
    table = (wd / "results/report/metrics.html").read_text()
    assert "<th>base</th>" in table and "<th>demo</th>" in table
    assert "training time<span class='unit'>min</span>" in table and ">untrained<" in table
    assert "full fine-tuning of tiny (qwen3_vl), 1 epoch" in table
    demo = (wd / "results/report/models/demo.html").read_text()
    for section in ("overview", "per-class-ap", "per-class-prf", "confusion", "training",
                    "telemetry"):  # fmt: skip
        assert f"<section id='{section}'>" in demo, section
    base = (wd / "results/report/models/base.html").read_text()
    assert "id='training'" not in base and "id='confusion'" in base
    gallery = (wd / "results/report/gallery/demo.html").read_text()
    assert gallery.count("<figure>") == 2  # report.overlays drawings with errors
    data = (wd / "results/report/data.html").read_text()
    assert "<td>image file … does not exist</td><td class='num'>1</td>" in data
    compare = (wd / "results/report/compare.html").read_text()
    assert '"models": ["' in compare and '"demo"' in compare and '"base"' in compare
    prov = (wd / "results/report/provenance.html").read_text()
    row = "<th>drawings</th><td class='num'>21</td><td class='num'>20</td><td class='num'>1</td>"
    assert row in prov


def _variant(wd, tmp_path, change: dict):
    f = tmp_path / "variant.yaml"
    f.write_text(yaml.safe_dump(change))
    return planned_jobs(wd, "--configfile", "config/config.yaml", str(f))


def test_changed_inference_setting_does_not_retrain(finished_workflow, tmp_path):
    jobs = _variant(finished_workflow, tmp_path, {"predict": {"max_new_tokens": 40}})
    assert "predict_split" in jobs and "score_detections" in jobs
    for rule in ("train_adapter", "merge_adapter", "convert_annotations", "split_dataset"):
        assert rule not in jobs


def test_logprobs_off_asks_no_validation_answers(finished_workflow, tmp_path):
    jobs = _variant(finished_workflow, tmp_path, {"predict": {"logprobs": False}})
    # demo's and base's test answers again, without log-probabilities; none on validation
    assert jobs.count("predict_split") == 2 and jobs.count("calibrate_scores") == 2
    for rule in ("train_adapter", "merge_adapter", "convert_annotations"):
        assert rule not in jobs


def test_changed_prompt_reconverts_and_retrains(finished_workflow, tmp_path):
    jobs = _variant(finished_workflow, tmp_path, {"prompt": "Find the views."})
    # demo's three splits, base's validation and test splits
    assert jobs.count("convert_annotations") == 5
    assert "train_adapter" in jobs and "predict_split" in jobs
    for rule in ("validate_annotations", "split_dataset", "build_tiny_model"):
        assert rule not in jobs


def test_changed_lora_rank_of_one_experiment_retrains_only_it(finished_workflow, tmp_path):
    jobs = _variant(
        finished_workflow, tmp_path, {"experiments": {"demo": {"learning_rate": 0.002}}}
    )
    assert "train_adapter" in jobs
    assert "convert_annotations" not in jobs
    # demo's validation and test splits; the untrained base keeps its predictions
    assert jobs.count("predict_split") == 2


def _data_copy(finished: Path, wd: Path) -> Path:
    """The finished workflow without its large model folders, to change data in."""
    shutil.copytree(
        finished, wd, symlinks=True, ignore=shutil.ignore_patterns("run", "merged", "models")
    )
    return wd


def test_new_drawing_keeps_old_splits(finished_workflow, tmp_path):
    """Adding a drawing re-reads the dataset but leaves every old drawing in its split."""
    wd = _data_copy(finished_workflow, tmp_path / "wf")
    before = {
        s: {r["sha256"] for r in load_jsonl(wd / f"results/splits/{s}.jsonl")}
        for s in ("train", "val", "test")
    }
    # the user drops 8 more drawings (seed 3 is deterministic: the first 20 are byte-identical)
    folder = wd / "data/drawings"
    coco = write_dataset(folder, n=28, seed=3, width=320)
    (folder / "annotations.json").write_text(json.dumps(coco))
    jobs = planned_jobs(wd, "results/splits/summary.json")
    assert jobs == ["validate_annotations", "split_dataset"] or sorted(jobs) == sorted(
        ["validate_annotations", "split_dataset"]
    )
    snakemake(wd, "results/splits/summary.json")
    after = {
        s: {r["sha256"] for r in load_jsonl(wd / f"results/splits/{s}.jsonl")}
        for s in ("train", "val", "test")
    }
    for s in before:
        assert before[s] <= after[s], f"an old drawing left the {s} split"
    assert sum(map(len, after.values())) == 28


def test_image_edited_in_place_is_decoded_alone(finished_workflow, tmp_path):
    """An image changed under the same name reruns validation, which decodes only that image."""
    wd = _data_copy(finished_workflow, tmp_path / "wf")
    target = "results/validated/drawings/summary.json"
    assert planned_jobs(wd, target) == []
    img = sorted((wd / "data/drawings/images").glob("*.png"))[0]
    from PIL import Image

    with Image.open(img) as im:
        edited = im.convert("L").point(lambda v: 255 - v)
    edited.save(img)
    assert planned_jobs(wd, target) == ["validate_annotations"]
    snakemake(wd, target)
    log = (wd / "logs/validate_annotations/drawings.log").read_text()
    assert "images decoded: 1 of 21" in log


def _params_changed(wd, tmp_path, change: dict) -> list[str]:
    """Output files whose rule's params a config edit changes (``--summary``; nothing runs)."""
    f = tmp_path / "variant.yaml"
    f.write_text(yaml.safe_dump(change))
    out = snakemake(wd, "--summary", "--configfile", "config/config.yaml", str(f)).stdout
    rows = [line.split("\t") for line in out.splitlines()[1:]]
    return sorted(r[0] for r in rows if len(r) > 4 and r[4] == "params changed")


def test_resize_bounds_do_not_revalidate_a_coco_dataset(finished_workflow, tmp_path):
    """Issue 13, bug 2: only a swift dataset's boxes depend on the smart-resize bounds; a COCO
    dataset keeps its validation (and everything after it) when model.max_pixels changes."""
    changed = _params_changed(finished_workflow, tmp_path, {"model": {"max_pixels": 802816}})
    assert "results/swift/demo/train.jsonl" in changed  # the model sees other image sizes
    assert not [f for f in changed if f.startswith("results/validated/")], changed


def test_config_edit_rebuilds_only_the_provenance_page(finished_workflow, tmp_path):
    """Issue 13, bug 3: the report's pictures and tables get only the keys they use; the
    config itself goes to the provenance page alone."""
    changed = _params_changed(finished_workflow, tmp_path, {"predict": {"max_new_tokens": 40}})
    assert "results/predictions/demo/test.jsonl" in changed
    assert "results/report/provenance.html" in changed
    report = [f for f in changed if f.startswith("results/report/")]
    assert report == ["results/report/provenance.html"], report


def test_stores_are_declared_and_adapters_protected(finished_workflow):
    """Issue 13, bug 4: the converted pages and the image cache are outputs of the rule that
    writes them; a trained adapter is write-protected; the checkpoint folder is where the rule
    says it is."""
    wd = finished_workflow
    summary = snakemake(wd, "--summary").stdout
    rows = {line.split("\t")[0]: line.split("\t") for line in summary.splitlines()[1:]}
    for store in ("resources/normalised/drawings", "resources/cache/drawings"):
        assert store in rows and "validate_annotations" in rows[store], store
    adapter = wd / "results/train/demo/adapter"
    for f in [adapter, *adapter.rglob("*")]:
        assert not f.stat().st_mode & 0o222, f"{f} is writable"
    assert (wd / "results/train/demo/run/drawtune-run.json").is_file()
