"""Per-experiment settings and the cross-field checks of config/config.yaml."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from drawtune.config import check_experiments, fill_defaults, load_schema, models, settings


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
