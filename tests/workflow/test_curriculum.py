"""A curriculum through the workflow (issue 21): `stage1` learns from single-view synthetic
sheets only (`train_datasets`, `synthetic.max_views: 1`), `stage2` starts from its merged model
(`init_from`) and learns from every dataset; both are scored on the one pooled test split. What
an edit of either stage reruns."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import copy_workflow, planned_jobs, snakemake, tiny_config

from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow

TARGETS = ["results/metrics/stage1/test.json", "results/metrics/stage2/test.json"]


def curriculum_config() -> dict:
    cfg = tiny_config("unused")
    cfg["datasets"] = {
        "simple": {
            "format": "coco",
            "annotations": "resources/synth/simple/annotations.json",
            "synthetic": {"n": 10, "seed": 7, "width": 320, "max_views": 1},
        },
        "full": {
            "format": "coco",
            "annotations": "resources/synth/full/annotations.json",
            "synthetic": {"n": 14, "seed": 8, "width": 320},
        },
    }
    first = cfg["experiments"].pop("demo")
    cfg["experiments"] = {
        "stage1": {**first, "train_datasets": ["simple"]},
        "stage2": {**first, "tuner": "lora", "learning_rate": 0.0005, "init_from": "stage1"},
    }
    return cfg


def _write(wd, cfg) -> None:
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("curriculum") / "drawtune")
    _write(wd, curriculum_config())
    snakemake(wd, *TARGETS)
    return wd


def test_stage1_learns_the_single_view_sheets_and_stage2_everything(curriculum):
    wd = curriculum

    def images(model, split):
        return [r["images"][0] for r in load_jsonl(wd / f"results/swift/{model}/{split}.jsonl")]

    pooled = {s: load_jsonl(wd / f"results/splits/{s}.jsonl") for s in ("train", "val", "test")}
    simple = [r for r in pooled["train"] if "/synth/simple/" in r["image"]]
    assert 0 < len(simple) < len(pooled["train"])  # the pooled train split holds both
    assert len(images("stage1", "train")) == len(simple)
    assert all("/synth/simple/" in i for i in images("stage1", "train") + images("stage1", "val"))
    assert len(images("stage2", "train")) == len(pooled["train"])
    # one test split for both: the leaderboard compares like with like
    assert images("stage1", "test") == images("stage2", "test")
    assert len(images("stage1", "test")) == len(pooled["test"])
    # the simple sheets have one view each
    coco = json.loads((wd / "resources/synth/simple/annotations.json").read_text())
    views = {1: "view", 2: "section_view", 3: "detail_view"}  # synth.CLASSES order
    per_image = {}
    for a in coco["annotations"]:
        if a["category_id"] in views:
            per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    assert set(per_image.values()) == {1} and len(per_image) == 10
    log = (wd / "logs/convert_annotations/stage1/train.log").read_text()
    assert f"train_datasets simple: {len(simple)} of the train split's" in log


def test_stage2_starts_from_stage1s_merged_model(curriculum):
    wd = curriculum
    log = (wd / "logs/train_adapter/stage2.log").read_text()
    assert "--model results/merged/stage1" in log
    for name in ("stage1", "stage2"):
        metrics = json.loads((wd / f"results/metrics/{name}/test.json").read_text())
        assert metrics["n_images"] == len(load_jsonl(wd / "results/splits/test.jsonl"))


def test_an_edit_of_stage1_reruns_stage2_and_not_the_other_way_round(curriculum, tmp_path):
    wd = curriculum
    cfg = curriculum_config()
    cfg["experiments"]["stage1"]["learning_rate"] = 0.002
    _write(wd, cfg)
    try:
        jobs = planned_jobs(wd, *TARGETS)
        assert jobs.count("train_adapter") == 2 and jobs.count("merge_adapter") == 2
        cfg = curriculum_config()
        cfg["experiments"]["stage2"]["learning_rate"] = 0.001
        _write(wd, cfg)
        jobs = planned_jobs(wd, *TARGETS)
        assert jobs.count("train_adapter") == 1 and "convert_annotations" not in jobs
        # another choice of datasets converts stage1's train and val again, not its test split
        cfg = curriculum_config()
        cfg["experiments"]["stage1"]["train_datasets"] = ["simple", "full"]
        _write(wd, cfg)
        jobs = planned_jobs(wd, *TARGETS)
        assert jobs.count("convert_annotations") == 2 and jobs.count("train_adapter") == 2
    finally:
        _write(wd, curriculum_config())


def test_a_train_only_first_stage_leaves_the_test_split_to_the_full_sheets(curriculum, tmp_path):
    # holdout: false on the single-view sheets: all of them train, the full sheets split as
    # before (the curriculum fixture pools both), and the scores are of full sheets alone
    wd = copy_workflow(tmp_path / "drawtune")
    cfg = curriculum_config()
    cfg["datasets"]["simple"]["holdout"] = False
    _write(wd, cfg)
    splits = [f"results/splits/{s}.jsonl" for s in ("train", "val", "test")]
    snakemake(wd, *splits)

    def where(folder, part):
        return {
            r["image"]: s
            for s in ("train", "val", "test")
            for r in load_jsonl(folder / f"results/splits/{s}.jsonl")
            if f"/synth/{part}/" in r["image"]
        }

    assert set(where(wd, "simple").values()) == {"train"} and len(where(wd, "simple")) == 10
    assert set(where(curriculum, "simple").values()) != {"train"}  # pooled, some are held out
    assert where(wd, "full") == where(curriculum, "full")
    assert "test" in where(wd, "full").values()
    summary = json.loads((wd / "results/splits/summary.json").read_text())
    assert summary["train"] + summary["val"] + summary["test"] == summary["read"] == 24
    # holdout back to true splits the pool again
    _write(wd, curriculum_config())
    assert "split_dataset" in planned_jobs(wd, *splits)
