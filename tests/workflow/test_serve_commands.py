"""Serving: `drawtune serve` starts ms-swift's OpenAI-compatible server for a trained experiment
on loopback, the real `openai` client gets an answer back and drawtune turns it into pixel
boxes; `drawtune predict` answers for drawings from the command line and draws the boxes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN
from PIL import Image
from serving import drawtune_serve

from drawtune.config import load_config


def _drawtune(wd, *args, **kw):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [str(BIN / "drawtune"), *args], cwd=wd, env=env, capture_output=True, text=True, **kw
    )


@pytest.mark.workflow
def test_predict_command_draws_boxes(finished_workflow):
    wd = finished_workflow
    test_rows = map(json.loads, open(wd / "results/swift/demo/test.jsonl"))
    test_images = [r["images"][0] for r in test_rows]
    images = test_images[:2]
    p = _drawtune(wd, "predict", *images, "--experiment", "demo", "--out", "adhoc", timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["image"] for r in rows] == images
    for image in images:
        overlay = wd / "adhoc" / (Path(image).stem + ".png")
        assert Image.open(overlay).size == Image.open(wd / image).size
    saved = [json.loads(x) for x in (wd / "adhoc/predictions.jsonl").read_text().splitlines()]
    assert len(saved) == 2 and all(isinstance(r["response"], str) for r in saved)
    bad = _drawtune(wd, "predict", "nowhere.png", "--experiment", "demo", "--out", "adhoc")
    assert bad.returncode == 2 and "nowhere.png" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.workflow
def test_serve_answers_through_openai_client(finished_workflow):
    from drawtune.serve import ask

    wd = finished_workflow
    with drawtune_serve(wd, "--experiment", "demo") as (client, _):
        listed = client.models.list().data
        assert [m.id for m in listed] == ["demo"]
        # the front says what it does for the model: untiled, its box score and threshold
        assert listed[0].model_extra["drawtune"]["tiling"] is None
        cfg = load_config(wd / "config/config.yaml")
        image = json.loads(open(wd / "results/swift/demo/test.jsonl").readline())["images"][0]
        got = ask(client, "demo", wd / image, cfg)
        assert isinstance(got["response"], str) and got["response"]
        assert isinstance(got["parsed"], bool) and isinstance(got["boxes"], list)
        # the server and `swift infer` use the same settings: same greedy answer
        p = _drawtune(wd, "predict", image, "--experiment", "demo", "--out", "adhoc1")
        assert p.returncode == 0, p.stderr[-3000:]
        assert json.loads(p.stdout.splitlines()[0])["boxes"] == got["boxes"]
        saved = json.loads((wd / "adhoc1/predictions.jsonl").read_text().splitlines()[0])
        assert saved["response"] == got["response"]
