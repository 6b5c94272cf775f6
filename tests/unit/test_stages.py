"""The GPU stages, each declared once: what travels how to a Vertex AI job, and the round trip
through a job's task (the launcher writes it, the worker reads it)."""

from __future__ import annotations

import json

import pytest

from drawtune.coords import ResizeSpec
from drawtune.errors import StageError
from drawtune.train.stages import STAGES, Merge, Predict, Train, from_task, stage_class

TRAIN = Train(
    family="qwen3_vl",
    base="resources/models/tiny-qwen3_vl",
    train_jsonl="results/swift/demo/train.jsonl",
    val_jsonl="results/swift/demo/val.jsonl",
    train_cfg={"tuner": "lora", "extra_args": {}},
    spec=ResizeSpec(min_pixels=3136, max_pixels=50176),
    adapter_out="results/train/demo/adapter",
    logging_out="results/train/demo/logging.jsonl",
    tensorboard_out="results/train/demo/tensorboard",
    log_path="logs/train_adapter/demo.log",
    run_dir="results/train/demo/run",
    manifest_jsonl="results/swift/demo/train.manifest.jsonl",
    telemetry_out="results/train/demo/telemetry.jsonl",
)


def test_each_stage_says_how_its_arguments_travel():
    assert set(STAGES) == {"train", "merge", "predict"}
    assert Train.fields_of("model") == ["base"]
    assert Train.fields_of("jsonl") == ["train_jsonl", "val_jsonl", "manifest_jsonl"]
    assert Train.fields_of("output") == [
        "adapter_out",
        "logging_out",
        "tensorboard_out",
        "telemetry_out",
    ]
    assert Train.fields_of("log") == ["log_path"] and Train.fields_of("resume") == ["run_dir"]
    assert Merge.fields_of("model", "path") == ["base", "adapter"]
    assert Merge.fields_of("output") == ["merged_out"]
    assert Predict.fields_of("model", "jsonl") == ["model", "dataset"]
    assert Predict.fields_of("result") == ["result_out"]
    assert Predict.io_of("batch_size") == "param"


def test_a_stage_survives_the_jobs_task():
    task = json.loads(json.dumps(TRAIN.to_task()))  # what the job's command line carries
    assert task["spec"] == {"min_pixels": 3136, "max_pixels": 50176, "factor": 28}
    assert from_task("train", task) == TRAIN


def test_a_vertex_replica_other_than_the_chief_only_takes_part():
    """The experiment's settings (its `deepspeed` too) travel unchanged; only the replica's
    part differs."""
    assert TRAIN.in_job(chief=True) == TRAIN
    assert TRAIN.in_job(chief=False) == TRAIN.replace(follower=True)
    for stage in (TRAIN.in_job(chief=True), TRAIN.in_job(chief=False)):
        assert stage.train_cfg == TRAIN.train_cfg


def test_unknown_stage_is_refused():
    with pytest.raises(StageError, match="unknown stage 'export'"):
        stage_class("export")


def test_predict_asks_for_logprobs_and_skips_a_split_without_drawings(tmp_path):
    empty = tmp_path / "val.jsonl"
    empty.write_text("")
    stage = Predict(
        family="qwen3_vl",
        spec=ResizeSpec(),
        log_path=str(tmp_path / "log"),
        model="no/such-model",  # never loaded: there is nothing to ask
        dataset=str(empty),
        batch_size=4,
        max_new_tokens=8,
        result_out=str(tmp_path / "out/val.jsonl"),
        logprobs=True,
        top_logprobs=5,
    )
    task = json.loads(json.dumps(stage.to_task()))
    assert task["logprobs"] is True and from_task("predict", task) == stage
    stage.run()
    assert (tmp_path / "out/val.jsonl").read_text() == ""


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_predict_passes_the_varlen_call_to_swift_infer_as_asked(tmp_path, monkeypatch, setting):
    """``vision_varlen`` reaches swift infer as the plugin flag and its environment variable
    (auto: off on this CPU); it travels in the job's task."""
    from drawtune.train import stages

    data = tmp_path / "test.jsonl"
    data.write_text(json.dumps({"messages": [], "images": ["a.png"]}) + "\n")
    out = tmp_path / "out/test.jsonl"
    calls = []

    def fake_run(cmd, env, log_path, label):
        calls.append((cmd, env))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"response": ""}) + "\n")

    monkeypatch.setattr(stages, "run_logged", fake_run)
    stage = Predict(
        family="qwen2_5_vl", spec=ResizeSpec(), log_path=str(tmp_path / "log"), model="m",
        dataset=str(data), batch_size=2, max_new_tokens=8, result_out=str(out),
        vision_varlen=setting,
    )  # fmt: skip
    assert from_task("predict", json.loads(json.dumps(stage.to_task()))) == stage
    stage.run()
    (cmd, env), on = calls[0], setting is True
    assert ("--external_plugins" in cmd) == on
    assert (env.get("DRAWTUNE_VISION_VARLEN") == "1") == on
