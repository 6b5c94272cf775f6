"""Issue 16, the input formats, through the workflow: one run over a corpus of bad datasets
(validation and split only: no training), then the cases that must stop the run."""

from __future__ import annotations

import json
import os

import bad_corpus as corpus
import pytest
import yaml
from conftest import copy_workflow, snakemake, tiny_config

from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow

SPLIT = "results/splits/summary.json"


def _config(wd, datasets: dict, max_rejected: float) -> None:
    cfg = tiny_config("unused")
    cfg["datasets"] = datasets
    cfg["validation"]["max_rejected_fraction"] = max_rejected
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def _by_record(path) -> dict:
    return {r["record"]: r for r in load_jsonl(path)}


@pytest.fixture(scope="module")
def bad_workflow(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("bad") / "drawtune")
    data = wd / "data"
    want = {
        "yolo": corpus.yolo_layouts(data / "yolo"),
        "coco_ids": corpus.coco_duplicate_ids_and_bad_types(data / "coco_ids", n=12),
    }
    corpus.same_image_two_datasets(data / "b_first", data / "a_second")
    # a broken symlink in an image folder: the job graph is built all the same
    os.symlink(data / "nowhere.png", data / "coco_ids" / "images" / "dangling.png")
    datasets = {
        "yolo": {"format": "auto", "annotations": "data/yolo"},
        "coco_ids": {"format": "coco", "annotations": "data/coco_ids/annotations.json"},
        "b_first": {"format": "coco", "annotations": "data/b_first/annotations.json"},
        "a_second": {"format": "coco", "annotations": "data/a_second/annotations.json"},
    }
    _config(wd, datasets, 0.4)
    proc = snakemake(wd, SPLIT, check=False)
    return wd, want, datasets, proc


def test_bad_datasets_keep_their_good_records(bad_workflow):
    wd, want, _, proc = bad_workflow
    assert proc.returncode == 0, proc.stderr[-3000:]
    v = wd / "results/validated"
    # item 1: the Ultralytics layout, a label named in another case, a label without image
    recs = {r["record"]: len(r["boxes"]) for r in load_jsonl(v / "yolo/records.jsonl")}
    assert recs == want["yolo"]["records"]
    rej = _by_record(v / "yolo/rejects.jsonl")
    assert {k: r["field"] for k, r in rej.items()} == want["yolo"]["rejects"]
    assert "matches no image" in rej["labels/train/ghost.txt"]["reason"]
    # items 2 and 7: two images with one id, values of the wrong type; the rest kept
    recs = sorted(r["record"] for r in load_jsonl(v / "coco_ids/records.jsonl"))
    assert recs == want["coco_ids"]["kept"]
    rej = _by_record(v / "coco_ids/rejects.jsonl")
    assert {k: r["field"] for k, r in rej.items()} == want["coco_ids"]["rejects"]
    assert all(r["file"] == "data/coco_ids/annotations.json" for r in rej.values())
    summary = json.loads((v / "coco_ids/summary.json").read_text())
    assert (summary["read"], summary["converted"], summary["rejected"]) == (12, 8, 4)


def test_one_drawing_with_two_answers_is_rejected_in_both_datasets(bad_workflow):
    wd, _, _, proc = bad_workflow
    assert proc.returncode == 0, proc.stderr[-3000:]
    rejects = load_jsonl(wd / "results/splits/rejects.jsonl")
    assert sorted(r["file"] for r in rejects) == [
        "data/a_second/annotations.json",
        "data/b_first/annotations.json",
    ]
    assert all("different boxes: no copy is kept" in r["reason"] for r in rejects)
    pooled = [
        r for s in ("train", "val", "test") for r in load_jsonl(wd / f"results/splits/{s}.jsonl")
    ]
    assert not any(r["image"].endswith("/c0.png") for r in pooled)
    assert len(pooled) == 4 + 8 + 4 + 4
    assert "different boxes" in (wd / "logs/split_dataset/split.log").read_text()


def test_split_rejects_count_and_bad_files_stop_the_run(bad_workflow):
    wd, _, datasets, _ = bad_workflow
    # item 9: the two repeated copies are 20 % of each dataset: over a limit of 10 %
    pair = {k: datasets[k] for k in ("b_first", "a_second")}
    _config(wd, pair, 0.1)
    proc = snakemake(wd, SPLIT, check=False)
    assert proc.returncode != 0
    assert "dataset a_second: 1 of 5 records rejected (1 of them as repeated images" in proc.stderr
    # item 1: a misspelled top-level key; a dataset with no box and on_empty: fail
    corpus.misspelled_key(wd / "data" / "typo")
    corpus.no_boxes(wd / "data" / "bare")
    _config(
        wd,
        {
            "typo": {"format": "coco", "annotations": "data/typo/annotations.json"},
            "bare": {
                "format": "coco",
                "annotations": "data/bare/annotations.json",
                "on_empty": "fail",
            },
        },
        0.1,
    )
    targets = ["results/validated/typo/summary.json", "results/validated/bare/summary.json"]
    proc = snakemake(wd, "--keep-going", *targets, check=False)
    assert proc.returncode != 0
    assert "unknown top-level key 'annotation'; did you mean 'annotations'?" in proc.stderr
    assert "dataset bare: none of its 3 drawings has a box" in proc.stderr
