"""Serving: `drawtune serve` starts ms-swift's OpenAI-compatible server for a trained experiment
on loopback, the real `openai` client gets an answer back and drawtune turns it into pixel
boxes; `drawtune predict` answers for drawings from the command line and draws the boxes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN
from PIL import Image

from drawtune.coords import ResizeSpec
from drawtune.serve import (
    ServeError,
    Target,
    deploy_command,
    load_config,
    pixel_boxes,
    resolve,
)


def _cfg(tmp_path, experiments):
    cfg = yaml.safe_load((Path(__file__).parent.parent / "config/config.yaml").read_text())
    cfg["experiments"] = experiments
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_resolve_merged_and_lora(tmp_path):
    d = {"tuner": "lora", "family": "qwen2_5_vl", "max_pixels": 50176}
    cfg = _cfg(
        tmp_path,
        {"a": {"tuner": "full"}, "b": {"tuner": "lora"}, "c": {"tuner": "lora"}, "d": d},
    )
    with pytest.raises(ServeError, match="results/merged/a is missing"):
        resolve(cfg, ["a"], root=tmp_path)
    (tmp_path / "results/merged/a").mkdir(parents=True)
    (tmp_path / "results/merged/a/config.json").write_text("{}")
    assert resolve(cfg, ["a"], root=tmp_path).model == str(tmp_path / "results/merged/a")
    assert resolve(cfg, ["base"]).model == "resources/models/tiny-qwen3_vl"
    with pytest.raises(ServeError, match="unknown experiment 'z'"):
        resolve(cfg, ["z"])
    with pytest.raises(ServeError, match="need --lora"):
        resolve(cfg, ["b", "c"])
    with pytest.raises(ServeError, match="tuner 'full'"):
        resolve(cfg, ["a", "b"], lora=True)
    for e in ("b", "c"):
        (tmp_path / f"results/train/{e}/adapter").mkdir(parents=True)
        (tmp_path / f"results/train/{e}/adapter/adapter_config.json").write_text("{}")
    t = resolve(cfg, ["b", "c"], lora=True, root=tmp_path)
    assert t.model == "resources/models/tiny-qwen3_vl"
    assert t.settings["family"] == "qwen3_vl" and t.settings["prompt"] == cfg["prompt"]
    # adapters of different base models or image sizes cannot share one server
    with pytest.raises(ServeError, match="differ in base_path, family, max_pixels"):
        resolve(cfg, ["b", "d"], lora=True, root=tmp_path)
    assert t.adapters == {e: str(tmp_path / f"results/train/{e}/adapter") for e in "bc"}


def test_deploy_command_serves_adapters_by_experiment_name():
    lora = Target("Qwen/Qwen3-VL-4B-Instruct", {"r8": "a/r8", "r16": "a/r16"}, ["r8", "r16"])
    cmd = deploy_command(
        family="qwen3_vl", target=lora, host="127.0.0.1", port=8123, max_new_tokens=64
    )
    assert cmd[:2] == ["swift", "deploy"]
    i = cmd.index("--adapters")
    assert cmd[i + 1 : i + 3] == ["r16=a/r16", "r8=a/r8"]
    assert "--served_model_name" not in cmd
    assert cmd[cmd.index("--use_hf") + 1] == "true"  # a hub id
    merged = Target("results/merged/x", {}, ["x"])
    cmd = deploy_command(
        family="qwen2_5_vl", target=merged, host="127.0.0.1", port=8123, max_new_tokens=64
    )
    assert cmd[cmd.index("--served_model_name") + 1] == "x"
    assert cmd[cmd.index("--template") + 1] == "qwen2_5_vl"
    assert cmd[cmd.index("--port") + 1] == "8123"


def test_pixel_boxes_map_model_frame_to_drawing():
    text = '```json\n[{"bbox_2d": [0, 0, 500, 1000], "label": "view"}]\n```'
    parsed, boxes = pixel_boxes(text, "qwen3_vl", 640, 480, ResizeSpec())
    assert parsed.ok and boxes == [{"label": "view", "bbox": [0.0, 0.0, 320.0, 480.0]}]
    parsed, boxes = pixel_boxes("no idea", "qwen3_vl", 640, 480, ResizeSpec())
    assert not parsed.ok and boxes == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    from openai import OpenAI

    from drawtune.serve import ask

    wd = finished_workflow
    port = _free_port()
    log = (wd / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "drawtune"), "serve", "--experiment", "demo", "--port", str(port)],
        cwd=wd,
        env=dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None, (wd / "serve.log").read_text()[-3000:]
            try:
                names = [m.id for m in client.models.list().data]
                break
            except Exception:
                assert time.time() < deadline, (wd / "serve.log").read_text()[-3000:]
                time.sleep(2)
        assert names == ["demo"]
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
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
