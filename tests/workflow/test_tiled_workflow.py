"""Large sheets as tiles in the workflow (issue 18): a tiled and an untiled experiment in one
run on large synthetic sheets with small objects, both scored at sheet coordinates; what a
tiling edit reruns; `drawtune predict` with the tiling that travels with the model, and
`drawtune serve` tiling on the server side."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import copy_workflow, planned_jobs, snakemake, tiny_config
from serving import drawtune_serve

from drawtune.coords import ResizeSpec
from drawtune.data.tiling import MODEL_TILING, Tiling, sheet_views
from drawtune.eval.merge_tiles import TileMerge, score_sheets, sheet_answers, sheet_predictions
from drawtune.eval.metrics import METRIC_KEYS
from drawtune.eval.score import scoring_of
from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow

TILING = {"size": 320, "overlap": 0.2, "min_visible": 0.3, "whole": True}
# a tile is seen at full size, the whole sheet downscaled to 352 x 256
SPEC = ResizeSpec(min_pixels=3136, max_pixels=102400)


def tiling_config() -> dict:
    cfg = tiny_config("resources/synth/big/annotations.json")
    cfg["datasets"] = {
        "big": {
            "format": "coco",
            "annotations": "resources/synth/big/annotations.json",
            # 512 x 362 sheets drawn with the objects of a 256-px sheet: many small ones
            "synthetic": {"n": 8, "seed": 1, "width": 512, "object_scale": 0.5},
        }
    }
    cfg["model"]["max_pixels"] = SPEC.max_pixels
    plain = {**cfg["experiments"].pop("demo"), "batch_size": 4}
    cfg["experiments"] = {"plain": plain, "tiled": {**plain, "tiling": dict(TILING)}}
    return cfg


def views_in(folder) -> list[str]:
    """The view images of a tiles folder (Snakemake keeps a timestamp file in it)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("tiled") / "drawtune")
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(tiling_config(), sort_keys=False))
    snakemake(wd)
    return wd


def test_tiled_and_untiled_experiments_are_both_scored_at_sheet_coordinates(tiled):
    wd = tiled
    test = load_jsonl(wd / "results/splits/test.jsonl")
    truth = json.loads((wd / "results/splits/test.coco.json").read_text())
    assert len(test) > 0 and all((r["width"], r["height"]) == (512, 362) for r in test)
    tiling = Tiling.of(TILING)
    views = sheet_views(512, 362, tiling, "qwen3_vl", SPEC)
    assert [v.kind for v in views] == ["whole", *["tile"] * 4]  # 2 x 2 tiles and the whole
    assert (views[0].width, views[0].height) == (352, 256)
    # the tiled experiment's data: one row per view; the plain one's: one per sheet
    rows = load_jsonl(wd / "results/swift/tiled/test.jsonl")
    manifest = load_jsonl(wd / "results/swift/tiled/test.manifest.jsonl")
    assert len(rows) == len(manifest) == 5 * len(test)
    assert [m["sheet"] for m in manifest] == [r["image"] for r in test for _ in views]
    assert [m["offset"] for m in manifest[:5]] == [list(v.offset) for v in views]
    assert views_in(wd / "results/swift/tiled/test.tiles") == sorted(
        m["image"].rsplit("/", 1)[1] for m in manifest
    )
    assert len(load_jsonl(wd / "results/swift/plain/test.jsonl")) == len(test)
    assert views_in(wd / "results/swift/plain/test.tiles") == []
    # every view answered, then merged onto its sheet as rule merge_tiles says
    answers = load_jsonl(wd / "results/predictions/tiled/test.jsonl")
    assert len(answers) == len(rows)
    sheets = load_jsonl(wd / "results/predictions/tiled/test.sheets.jsonl")
    assert [s["images"] for s in sheets] == [[r["image"]] for r in test]
    assert sheets == sheet_predictions(answers, manifest, "qwen3_vl", SPEC, TileMerge())
    # both scored against the same full-sheet truth
    for model in ("plain", "tiled", "base"):
        metrics = json.loads((wd / f"results/metrics/{model}/test.json").read_text())
        assert metrics["n_images"] == len(test)
        details = load_jsonl(wd / f"results/metrics/{model}/test.details.jsonl")
        assert [d["image"] for d in details] == [i["file_name"] for i in truth["images"]]
        for d in details:
            for b in d["boxes"]:
                x1, y1, x2, y2 = b["bbox"]
                assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 362
    metrics = json.loads((wd / "results/metrics/tiled/test.json").read_text())
    conf = json.loads((wd / "results/train/tiled/confidence.json").read_text())
    scored = scoring_of(sheet_answers(sheets, truth), truth, conf["scores"], conf["threshold"])
    assert metrics == scored.metrics
    assert {k: metrics[k] for k in METRIC_KEYS} == score_sheets(sheets, truth)[0]
    # the validation sheets are merged too: the box score and threshold are chosen on them
    assert (wd / "results/predictions/tiled/val.sheets.jsonl").is_file()
    table = (wd / "results/report/metrics.html").read_text()
    assert "<th>plain</th>" in table and "<th>tiled</th>" in table
    # the tiling travels with the model; the merge is no training setting
    assert json.loads((wd / "results/merged/tiled" / MODEL_TILING).read_text()) == TILING
    assert not (wd / "results/merged/plain" / MODEL_TILING).exists()
    record = json.loads((wd / "results/train/tiled/adapter/drawtune-adapter.json").read_text())
    assert record["settings"]["train"]["tiling"] == TILING
    assert planned_jobs(wd) == []


def _variant(wd, tmp_path, experiments: dict):
    f = tmp_path / "variant.yaml"
    f.write_text(yaml.safe_dump({"experiments": experiments}))
    return f, planned_jobs(wd, "--configfile", "config/config.yaml", str(f))


def test_adding_tiling_to_one_experiment_reruns_only_that_experiment(tiled, tmp_path):
    exps = tiling_config()["experiments"]
    f, jobs = _variant(tiled, tmp_path, {**exps, "plain": {**exps["plain"], "tiling": TILING}})
    assert sorted(jobs) == sorted(
        [
            *["convert_annotations"] * 3,
            "train_adapter",
            "merge_adapter",
            *["predict_split", "merge_tiles"] * 2,  # the validation and test splits
            "calibrate_scores",
            "score_detections",
            "report_leaderboard",
            "report_compare",
            "report_model",  # this model's page only
            "report_confidence",
            "report_provenance",
            "all",
        ]
    )
    # --summary: every output it would touch is the plain experiment's (or the config page)
    summary = snakemake(tiled, "--summary", "--configfile", "config/config.yaml", str(f)).stdout
    rows = [line.split("\t") for line in summary.splitlines()[1:] if "\t" in line]
    pending = {r[0]: r[4] for r in rows if r[4] != "ok"}
    assert pending and all(
        "plain" in out.split("/")
        or out == "results/report/provenance.html"
        or out.startswith("results/report/confidence")
        or out.split("/")[-1] in ("plain.html", "metrics.html", "home.html", "compare.html")
        for out in pending
    ), pending
    assert pending["results/swift/plain/train.jsonl"] == "params changed"
    assert pending["results/predictions/plain/test.sheets.jsonl"] == "missing"


def test_a_changed_merge_reruns_only_the_merge_and_the_scores(tiled, tmp_path):
    exps = tiling_config()["experiments"]
    merge = {**TILING, "merge": {"method": "nms", "metric": "iou"}}
    _, jobs = _variant(tiled, tmp_path, {**exps, "tiled": {**exps["tiled"], "tiling": merge}})
    assert sorted(jobs) == sorted(
        [
            *["merge_tiles"] * 2,  # the validation and test sheets
            "calibrate_scores",
            "score_detections",
            "report_leaderboard",
            "report_compare",
            "report_model",  # this model's page only
            "report_confidence",
            "report_provenance",
            "all",
        ]
    )


def test_drawtune_predict_tiles_with_the_tiling_recorded_next_to_the_model(tiled):
    wd = tiled
    image = load_jsonl(wd / "results/splits/test.jsonl")[0]["image"]
    cli = [sys.executable, "-m", "drawtune.cli", "predict", image, "--out"]
    for args in (["adhoc", "--experiment", "tiled"], ["any", "--model", "results/merged/tiled"]):
        p = subprocess.run([*cli, *args], cwd=wd, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        row = json.loads(p.stdout.strip().splitlines()[0])
        # boxes kept by the model's threshold, all of them, and how they were scored
        assert set(row) == {"image", "parsed", "boxes", "raw_boxes", "scores", "threshold"}
        full = load_jsonl(wd / args[0] / "predictions.jsonl")[0]
        assert full["n_views"] == 5 and len(full["response"]) == 5
        for b in row["boxes"]:
            x1, y1, x2, y2 = b["bbox"]
            assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 362
        assert (wd / args[0] / (image.rsplit("/", 1)[1])).is_file()  # the overlay


def test_drawtune_serve_tiles_on_the_server_side(tiled):
    """`drawtune serve` for the tiled model: any OpenAI client sends the whole sheet, the front
    asks `swift deploy` about its views and answers with the merged boxes, as `swift infer`
    (drawtune predict) gives them."""
    from drawtune.config import load_config
    from drawtune.data.convert import answer_text
    from drawtune.serve import image_message

    wd = tiled
    image = load_jsonl(wd / "results/splits/test.jsonl")[0]["image"]
    cfg = load_config(wd / "config/config.yaml")
    with drawtune_serve(wd, "--experiment", "tiled") as (client, log):
        (listed,) = client.models.list().data
        assert listed.id == "tiled" and listed.model_extra["drawtune"]["tiling"]["size"] == 320
        reply = client.chat.completions.create(
            model="tiled",
            messages=image_message(wd / image, cfg["prompt"]),
            max_tokens=cfg["predict"]["max_new_tokens"],
            temperature=0,
        )
        assert "320-px tiles merged by the front" in log.read_text()
    got = reply.model_extra["drawtune"]
    assert got["n_views"] == 5 and len(got["responses"]) == 5
    for b in got["boxes"]:
        x1, y1, x2, y2 = b["bbox"]
        assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 362
    # the answer is the merged one, written in the family's convention for the whole sheet
    text = answer_text(got["boxes"], "qwen3_vl", 512, 362, SPEC)
    assert reply.choices[0].message.content == text
    # the same views and greedy answers as `drawtune predict` (swift infer) on the sheet
    cli = [sys.executable, "-m", "drawtune.cli", "predict", image, "--out", "served"]
    p = subprocess.run([*cli, "--experiment", "tiled"], cwd=wd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    (row,) = load_jsonl(wd / "served/predictions.jsonl")
    assert got["responses"] == row["response"]
    assert got["boxes"] == row["boxes"] and got["raw_boxes"] == row["raw_boxes"]
