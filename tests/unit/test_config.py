"""Per-experiment settings and the cross-field checks of config/config.yaml."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from drawtune.config import (
    check_base_models,
    check_experiments,
    completed,
    fill_defaults,
    is_local_path,
    load_schema,
    models,
    origin,
    read_yaml,
    schema_problem,
    settings,
    train_only_datasets,
)
from drawtune.errors import ConfigError


def shipped() -> dict:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    return fill_defaults(cfg, load_schema())


def test_experiment_keys_override_the_global_model_and_prompt():
    cfg = shipped()
    cfg["experiments"]["hires"] = {
        "base": "Qwen/Qwen2.5-VL-7B-Instruct",
        "family": "qwen2_5_vl",
        "max_pixels": 2007040,
        "prompt": "Find the views.",
    }
    s = settings(cfg, "hires")
    assert (s["base_path"], s["family"], s["max_pixels"], s["prompt"]) == (
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "qwen2_5_vl",
        2007040,
        "Find the views.",
    )
    assert s["min_pixels"] == cfg["model"]["min_pixels"]  # not overridden: the global one
    demo = settings(cfg, "demo")
    assert demo["prompt"] == cfg["prompt"] and demo["base_path"] == "resources/models/tiny-qwen3_vl"
    assert demo["task"] == "detect" and demo["classes"] == cfg["classes"]
    base = settings(cfg, "base")
    assert base["tuner"] == "none" and base["family"] == "qwen3_vl"
    assert models(cfg) == ["base", "demo", "hires", "sheet_type"]


def test_init_from_starts_from_the_other_experiments_merged_model():
    cfg = shipped()
    cfg["experiments"]["stage1"] = {"tuner": "full", "family": "qwen2_5_vl", "max_pixels": 50176}
    cfg["experiments"]["stage2"] = {"tuner": "lora", "init_from": "stage1"}
    cfg["experiments"]["stage3"] = {"init_from": "stage2", "learning_rate": 1e-5}
    check_experiments(cfg)
    s = settings(cfg, "stage2")
    assert s["base"] == s["base_path"] == "results/merged/stage1"
    assert (s["family"], s["max_pixels"]) == ("qwen2_5_vl", 50176)  # the model it starts from
    assert settings(cfg, "stage3")["base_path"] == "results/merged/stage2"
    assert settings(cfg, "stage3")["family"] == "qwen2_5_vl"
    assert origin(cfg, "stage3") == "stage1" and origin(cfg, "demo") == "demo"


@pytest.mark.parametrize(
    "stage2, message",
    [
        ({"init_from": "nowhere"}, "init_from 'nowhere' is no experiment"),
        ({"init_from": "stage2"}, "goes round: stage2 -> stage2"),
        ({"init_from": "untrained"}, "has tuner none"),
        ({"init_from": "sheet_type"}, "another task"),
        ({"init_from": "stage1", "base": "Qwen/Qwen3-VL-4B-Instruct"}, "init_from and base"),
        ({"init_from": "stage1", "family": "qwen2_5_vl"}, "family qwen2_5_vl differs"),
        ({"train_datasets": ["nowhere"]}, "train_datasets names 'nowhere'"),
        ({"train_datasets": ["sheets"]}, "not a detection dataset"),
        ({"task": "classify", "dataset": "sheets", "train_datasets": ["demo"]}, "task detect"),
    ],
)
def test_bad_init_from_and_train_datasets_are_refused(stage2, message):
    cfg = shipped()
    cfg["experiments"]["stage1"] = {"tuner": "lora"}
    cfg["experiments"]["untrained"] = {"tuner": "none"}
    cfg["experiments"]["stage2"] = stage2
    with pytest.raises(ValueError, match=message):
        check_experiments(cfg)


def test_a_cycle_of_two_is_named():
    cfg = shipped()
    cfg["experiments"]["a"] = {"init_from": "b"}
    cfg["experiments"]["b"] = {"init_from": "a"}
    with pytest.raises(ValueError, match="experiment a: init_from goes round: a -> b -> a"):
        check_experiments(cfg)


def test_classification_experiment_gets_its_dataset_classes_and_prompt():
    cfg = shipped()
    s = settings(cfg, "sheet_type")
    assert s["task"] == "classify" and s["classes"] == ["landscape", "portrait"]
    assert "landscape, portrait" in s["prompt"]
    cfg["datasets"]["sheets"]["prompt"] = "Which orientation?"
    assert settings(cfg, "sheet_type")["prompt"] == "Which orientation?"
    cfg["experiments"]["sheet_type"]["prompt"] = "Orientation of this sheet?"
    assert settings(cfg, "sheet_type")["prompt"] == "Orientation of this sheet?"


@pytest.mark.parametrize(
    "experiment, message",
    [
        ({"task": "classify"}, "needs `dataset`"),
        ({"task": "classify", "dataset": "nope"}, "needs `dataset`"),
        ({"task": "classify", "dataset": "demo"}, "dataset demo has task detect"),
        ({"dataset": "sheets"}, "`dataset` is for task classify"),
    ],
)
def test_inconsistent_experiments_are_refused(experiment, message):
    cfg = shipped()
    cfg["experiments"]["bad"] = experiment
    with pytest.raises(ValueError, match=message):
        check_experiments(cfg)


def test_holdout_false_is_for_detection_and_one_dataset_stays_held_out():
    cfg = shipped()
    cfg["datasets"]["sheets"]["holdout"] = False
    with pytest.raises(ValueError, match="dataset sheets: holdout false is for task detect"):
        check_experiments(cfg)
    cfg = shipped()
    cfg["datasets"]["demo"]["holdout"] = False
    with pytest.raises(ValueError, match="every detection dataset has holdout false"):
        check_experiments(cfg)
    cfg["datasets"]["extra"] = dict(cfg["datasets"]["demo"], holdout=True)
    check_experiments(cfg)
    assert train_only_datasets(cfg) == ["demo"]
    assert completed(shipped())["datasets"]["demo"]["holdout"] is True


def test_only_classification_data_leaves_no_base_and_refuses_detection():
    cfg = shipped()
    del cfg["datasets"]["demo"]
    with pytest.raises(ValueError, match="no dataset has task detect"):
        check_experiments(cfg)
    del cfg["experiments"]["demo"]
    check_experiments(cfg)
    assert models(cfg) == ["sheet_type"]  # no detection data: no `base` to score


def test_schema_keeps_classification_formats_to_classify_datasets():
    import jsonschema

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["datasets"]["demo"]["format"] = "csv"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, load_schema())
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["datasets"]["sheets"]["format"] = "coco"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, load_schema())


def test_every_schema_key_has_a_description():
    """config/schema.yaml documents every key it allows (block style, one key a line)."""
    missing = []

    def walk(node, path):
        if path and "description" not in node:
            missing.append("/".join(path))
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, [*path, name])
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], [*path, "*"])
        for name, sub in (node.get("definitions") or {}).items():
            walk(sub, [*path, f"#{name}"])

    walk(load_schema(), [])
    assert missing == []


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("classes: [a]\nmodel:\n  base: x\n   family: y\n")
    with pytest.raises(ConfigError, match=r"my\.yaml, line 4, column 10: YAML syntax error"):
        read_yaml(f)


def test_misspelled_top_level_key_is_one_line():
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["clases"] = cfg.pop("classes")
    problem = schema_problem(cfg)
    assert problem.startswith("unknown key 'clases' (did you mean 'classes'?)")
    assert "\n" not in problem and len(problem) < 200
    cfg["classes"] = cfg.pop("clases")
    cfg["experiments"]["demo"]["epocs"] = 2
    assert schema_problem(cfg).startswith("unknown key 'experiments/demo/epocs' (did you mean")
    assert schema_problem(shipped()) is None


@pytest.mark.parametrize("key", ["model", "experiment"])
def test_missing_local_base_folder_is_found_at_startup(tmp_path, monkeypatch, key):
    monkeypatch.chdir(tmp_path)
    cfg = shipped()
    missing = "./models/qwen-finetuned"
    if key == "model":
        cfg["model"]["base"] = missing
        name = "model.base"
    else:
        cfg["experiments"]["demo"]["base"] = missing
        name = "experiments.demo.base"
    with pytest.raises(ValueError, match=rf"{name}: local model folder {missing} does not exist"):
        check_base_models(cfg)
    (tmp_path / missing).mkdir(parents=True)
    check_base_models(cfg)


@pytest.mark.parametrize("base", ["Qwen/Qwen3-VL-4B-Instruct", "gs://bucket/models/q", "tiny"])
def test_hub_ids_and_bucket_paths_are_no_local_folders(tmp_path, monkeypatch, base):
    monkeypatch.chdir(tmp_path)
    assert not is_local_path(base)
    cfg = shipped()
    cfg["model"]["base"] = base
    check_base_models(cfg)
