"""Serving without a model: which weights an experiment resolves to, the `swift deploy` command,
and answers mapped to pixel boxes (the commands themselves: tests/workflow)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from conftest import ROOT

from drawtune.config import load_config
from drawtune.coords import ResizeSpec
from drawtune.eval.score import pixel_boxes
from drawtune.serve import ServeError, Target, answer, confidence_of, deploy_command, resolve


def _cfg(tmp_path, experiments):
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
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


def _logprobs(pieces):
    return {"content": [{"token": t, "logprob": math.log(p)} for t, p in pieces]}


def test_answer_drops_boxes_below_the_models_threshold(tmp_path):
    s = {"task": "detect", "family": "qwen3_vl", "min_pixels": 3136, "max_pixels": 1003520}
    text = (
        '[{"bbox_2d": [0, 0, 500, 500], "label": "view"}, '
        '{"bbox_2d": [5, 5, 9, 9], "label": "note"}]'
    )
    # one token a box, so that each box's score is its token's probability squared
    first, second = text.index("}, {") + 1, len(text)
    logprobs = _logprobs([(text[:first], 0.9), (text[first:second], 0.5), ("<|im_end|>", 1.0)])
    confidence = {"scores": "label_coords_gmean", "threshold": 0.5}
    got = answer(text, s, 1000, 1000, logprobs, confidence)
    assert got["scores"] == "label_coords_gmean" and got["threshold"] == 0.5
    assert [b["score"] for b in got["raw_boxes"]] == [0.81, 0.25]
    assert got["boxes"] == got["raw_boxes"][:1]
    # a threshold given overrides the model's; no log-probabilities: every box, unscored
    assert len(answer(text, s, 1000, 1000, logprobs, confidence, threshold=0.0)["boxes"]) == 2
    plain = answer(text, s, 1000, 1000, None, confidence)
    assert plain["scores"] == "none" and plain["threshold"] is None
    assert plain["boxes"] == plain["raw_boxes"] and "score" not in plain["boxes"][0]
    # the model's file beside its adapter, or in a model folder it travels with
    assert confidence_of("demo", root=tmp_path) is None
    (tmp_path / "results/train/demo").mkdir(parents=True)
    (tmp_path / "results/train/demo/confidence.json").write_text(json.dumps(confidence))
    assert confidence_of("demo", root=tmp_path) == confidence
    (tmp_path / "model").mkdir()
    assert confidence_of("demo", model_dir=tmp_path / "model", root=tmp_path) is None
    (tmp_path / "model/drawtune-confidence.json").write_text(json.dumps(confidence))
    assert confidence_of("demo", model_dir=tmp_path / "model")["threshold"] == 0.5
