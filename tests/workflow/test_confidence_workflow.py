"""Box confidences end to end (issue 17): the workflow on a tiny model that answers boxes, with
the real `swift infer --logprobs`, writes log-probabilities, scores every box from its tokens,
chooses the threshold on the validation split and keeps it with the model; the test metrics
are ranked by the scores; `drawtune predict` and `drawtune serve` drop the boxes below it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from answering_model import answering_model
from conftest import BIN, copy_workflow, make_user_dataset, snakemake, tiny_config
from serving import drawtune_serve

from drawtune.config import load_config
from drawtune.eval.confidence import answer_tokens
from drawtune.eval.score import DETECTION_KEYS
from drawtune.jsonio import dump_jsonl, load_jsonl
from drawtune.train.swift_cmd import swift_env
from drawtune.train.tiny_model import build_tiny_model

pytestmark = pytest.mark.workflow
MAX_PIXELS = 50176  # 49 visual tokens a drawing: a quick run on CPU


def _drawtune(wd, *args, **kw):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [str(BIN / "drawtune"), *args], cwd=wd, env=env, capture_output=True, text=True, **kw
    )


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The workflow on 20 drawings: `base` the random tiny model (no box in its answers),
    `taught` the tiny model taught one answer of three boxes (tests/support/answering_model)."""
    wd = copy_workflow(tmp_path_factory.mktemp("conf") / "drawtune")
    coco = make_user_dataset(wd / "data" / "drawings", n=20)
    cfg = tiny_config("data/drawings/annotations.json")
    cfg["model"]["max_pixels"] = MAX_PIXELS
    cfg["predict"] = {"batch_size": 4, "max_new_tokens": 110}  # logprobs on by default
    tiny, taught = wd / "models/tiny", wd / "models/taught"
    build_tiny_model("qwen3_vl", tiny)
    rows = [
        {
            "messages": [{"role": "user", "content": "<image>" + cfg["prompt"]}],
            "images": [str(wd / "data/drawings" / img["file_name"])],
        }
        for img in coco["images"][:6]
    ]
    dump_jsonl(rows, wd / "models/teach.jsonl")
    env = swift_env("qwen3_vl", cfg["model"]["min_pixels"], MAX_PIXELS, str(tiny))
    answering_model(tiny, taught, wd / "models/teach.jsonl", env, log=wd / "models/teach.log")
    cfg["experiments"] = {"taught": {"tuner": "none", "base": str(taught)}}
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(wd)
    return wd


def test_predictions_carry_logprobs_that_spell_the_answers(scored):
    wd = scored
    for model in ("taught", "base"):
        for split in ("val", "test"):
            rows = load_jsonl(wd / f"results/predictions/{model}/{split}.jsonl")
            assert rows
            for r in rows:
                tokens = answer_tokens(r["response"], r["logprobs"])
                assert tokens and "".join(t.text for t in tokens) == r["response"]
                assert all(len(t.top) == 5 for t in tokens)  # predict.top_logprobs
    taught = load_jsonl(wd / "results/predictions/taught/test.jsonl")
    assert all('"title_block"' in r["response"] for r in taught)


def test_boxes_are_scored_and_the_threshold_is_kept_with_the_model(scored):
    wd = scored
    conf = json.loads((wd / "results/train/taught/confidence.json").read_text())
    assert conf["scores"] == "label_coords_gmean" and conf["chosen_by"] == "config"
    # the title block is right on every synthetic drawing: a threshold is found
    assert 0.0 < conf["threshold"] <= 1.0 and conf["reason"] is None
    v = conf["validation"]
    assert v["n_boxes"] == 3 * v["n_images"] > 0
    assert set(v["variants"]) == {
        "label_coords_gmean",
        "label_coords_min",
        "objectness",
        "joint",
        "none",
    }
    m = json.loads((wd / "results/metrics/taught/test.json").read_text())
    assert tuple(sorted(m)) == tuple(sorted(DETECTION_KEYS))
    assert m["scores"] == "label_coords_gmean" and m["n_unscored"] == 0
    assert m["threshold"] == conf["threshold"] and m["map50"] > 0
    details = load_jsonl(wd / "results/metrics/taught/test.details.jsonl")
    boxes = [b for d in details for b in d["boxes"]]
    assert len(boxes) == 3 * len(details)
    assert all(0.0 < b["score"] <= 1.0 and isinstance(b["tp50"], bool) for b in boxes)
    assert m["at_threshold"]["n_kept"] == sum(b["score"] >= m["threshold"] for b in boxes)
    assert all(b["tp50"] for b in boxes if b["label"] == "title_block")
    curves = json.loads((wd / "results/metrics/taught/test.curves.json").read_text())
    assert curves["per_class"]["title_block"]["recall"][-1] == 1.0
    assert sum(b["n"] for b in curves["reliability"]["bins"]) == len(boxes)
    # the random model answers no box: scored (it has log-probabilities), nothing to threshold
    base = json.loads((wd / "results/train/base/confidence.json").read_text())
    assert base["threshold"] is None and "no boxes" in base["reason"]


def test_report_shows_curves_threshold_and_reliability(scored):
    wd = scored
    page = (wd / "results/report/confidence.html").read_text()
    assert "<h1>Box confidences and thresholds</h1>" in page  # the report's own page style
    assert "<th>taught</th><td>label_coords_gmean</td>" in page
    conf = json.loads((wd / "results/train/taught/confidence.json").read_text())
    assert f"<td class='num'>{conf['threshold']:.4g}</td>" in page
    charts = sorted(p.name for p in (wd / "results/report/confidence").glob("*.png"))
    assert charts == [
        "base__pr_curves.png", "base__reliability.png",
        "taught__pr_curves.png", "taught__reliability.png",
    ]  # fmt: skip
    assert (wd / "results/report/confidence/taught__reliability.png").stat().st_size > 10_000
    snakemake(wd, "--report", "results/report.html")
    assert "confidence" in (wd / "results/report.html").read_text(errors="replace")


def test_predict_drops_boxes_below_the_threshold(scored):
    wd = scored
    conf = json.loads((wd / "results/train/taught/confidence.json").read_text())
    image = load_jsonl(wd / "results/swift/taught/test.jsonl")[0]["images"][0]
    p = _drawtune(wd, "predict", image, "--experiment", "taught", "--out", "adhoc", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (row,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert row["scores"] == "label_coords_gmean" and row["threshold"] == conf["threshold"]
    assert len(row["raw_boxes"]) == 3
    assert row["boxes"] == [b for b in row["raw_boxes"] if b["score"] >= conf["threshold"]]
    # the same boxes and scores as the workflow's test details (a batch of one drawing here,
    # of four there: the scores agree to float precision)
    details = {d["image"]: d for d in load_jsonl(wd / "results/metrics/taught/test.details.jsonl")}
    want = details[image]["boxes"]
    assert [(b["label"], b["bbox"]) for b in row["raw_boxes"]] == [
        (b["label"], b["bbox"]) for b in want
    ]
    assert [b["score"] for b in row["raw_boxes"]] == pytest.approx(
        [b["score"] for b in want], abs=1e-4
    )
    p = _drawtune(wd, "predict", image, "--experiment", "taught", "--threshold", "0", "--out", "a0")
    assert p.returncode == 0, p.stderr[-3000:]
    assert len(json.loads(p.stdout.splitlines()[0])["boxes"]) == 3


def test_serve_scores_the_answer_it_gets(scored):
    from drawtune.serve import ask

    wd = scored
    with drawtune_serve(wd, "--experiment", "taught") as (client, log):
        cfg = load_config(wd / "config/config.yaml")
        image = load_jsonl(wd / "results/swift/taught/test.jsonl")[0]["images"][0]
        got = ask(client, "taught", wd / image, cfg, root=wd)
        conf = json.loads((wd / "results/train/taught/confidence.json").read_text())
        assert got["scores"] == "label_coords_gmean" and got["threshold"] == conf["threshold"]
        assert len(got["raw_boxes"]) == 3 and all("score" in b for b in got["raw_boxes"])
        assert got["boxes"] == [b for b in got["raw_boxes"] if b["score"] >= got["threshold"]]
        assert "threshold" in log.read_text()
        # a request's own threshold: 0 keeps every box
        assert ask(client, "taught", wd / image, cfg, threshold=0.0)["boxes"] == got["raw_boxes"]
