"""An experiment's `report_to` (issue 20): ms-swift's trackers, off-line in the run folder.
The real W&B run is in tests/workflow/test_experiments.py."""

from __future__ import annotations

import pytest
import yaml
from test_swift_cmd import flag, sft

from drawtune import paths
from drawtune.config import schema_problem
from drawtune.errors import StageError
from drawtune.train import tracking


def test_tensorboard_when_left_out_with_the_command_of_before(tmp_path):
    cmd = sft(tmp_path)
    assert cmd[cmd.index("--report_to") : cmd.index("--report_to") + 3][1:] == [
        "tensorboard",
        "--split_dataset_ratio",
    ]  # the same command (and so the same resume fingerprint) as before report_to existed
    assert "--swanlab_mode" not in cmd


def test_report_to_lists_every_tracker_in_order(tmp_path):
    cmd = sft(tmp_path, report_to=["tensorboard", "wandb", "swanlab"])
    i = cmd.index("--report_to")
    assert cmd[i + 1 : i + 4] == ["tensorboard", "wandb", "swanlab"]
    assert flag(cmd, "--swanlab_mode") == "local" and flag(cmd, "--swanlab_exp_name") == "run"
    assert flag(sft(tmp_path, report_to="none"), "--report_to") == "none"
    assert flag(sft(tmp_path, report_to="mlflow"), "--report_to") == "mlflow"


def test_trackers_stay_off_line_in_the_run_folder(tmp_path):
    run = tmp_path / "results/train/r8/run"
    env = tracking.tracking_env(["tensorboard", "wandb", "mlflow", "swanlab"], run, "r8", {})
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(run.resolve())
    assert env["WANDB_NAME"] == "r8"
    assert env["MLFLOW_TRACKING_URI"] == (run.resolve() / "mlruns").as_uri()
    assert env["SWANLAB_LOG_DIR"] == str(run.resolve() / "swanlog")
    assert tracking.tracking_env(["tensorboard"], run, "r8", {}) == {}


def test_what_the_user_set_wins(tmp_path):
    mine = {"WANDB_MODE": "online", "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}
    env = tracking.tracking_env(["wandb", "mlflow"], tmp_path, "r8", mine)
    assert "WANDB_MODE" not in env and "MLFLOW_TRACKING_URI" not in env
    assert env["WANDB_DIR"] == str(tmp_path.resolve())


def test_a_tracker_that_is_not_installed_stops_training_with_the_fix(monkeypatch):
    monkeypatch.setitem(tracking.TRACKERS, "swanlab", "drawtune_no_such_module")
    with pytest.raises(
        StageError, match=r"report_to names swanlab.*pip install -e '\.\[swanlab\]'"
    ):
        tracking.check_installed(["tensorboard", "swanlab"])
    tracking.check_installed(["tensorboard"])


def test_schema_takes_known_trackers_only():
    cfg = yaml.safe_load((paths.WORKFLOW / "config/config.yaml").read_text())
    exp = next(iter(cfg["experiments"]))
    for ok in ("wandb", ["tensorboard", "mlflow"], "none"):
        cfg["experiments"][exp]["report_to"] = ok
        assert schema_problem(cfg) is None, ok
    for bad in ("neptune", ["wandb", "wandb"], []):
        cfg["experiments"][exp]["report_to"] = bad
        assert schema_problem(cfg), bad
