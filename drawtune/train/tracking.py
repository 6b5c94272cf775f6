"""Where a training run logs its curves: ms-swift's ``--report_to`` (TensorBoard by default;
Weights & Biases, MLflow and SwanLab when installed), always safe without a network.

An experiment's ``report_to`` names one tracker or a list. Each writes into the run's folder
(``results/train/<experiment>/run/``) and stays off-line unless the environment the trainer
runs in says otherwise:

- ``tensorboard``: ``run/runs/``, copied to ``results/train/<experiment>/tensorboard/``;
- ``wandb``: ``WANDB_MODE=offline`` and ``WANDB_DIR=run/`` (an offline run under
  ``run/wandb/``; ``wandb sync`` uploads it later); set ``WANDB_MODE=online`` to log live;
- ``mlflow``: ``MLFLOW_TRACKING_URI`` a file store in ``run/mlruns/`` (``mlflow ui
  --backend-store-uri ...``); a URI set in the environment (a tracking server) wins;
- ``swanlab``: ms-swift's ``--swanlab_mode local`` with its logs in ``run/swanlog/``;
  ``extra_args: {swanlab_mode: cloud}`` logs to SwanLab's cloud instead.

Variables the user set are never overridden. The tracking environment is no training setting:
a run interrupted with one tracker resumes with another.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path

from ..errors import StageError

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow",
            "swanlab": "swanlab"}  # fmt: skip
DEFAULT = ("tensorboard",)
PROJECT = "drawtune"


def trackers(train_cfg: Mapping) -> list[str]:
    """The experiment's ``report_to`` as a list (``none``: no tracker)."""
    value = train_cfg.get("report_to", list(DEFAULT))
    names = [value] if isinstance(value, str) else list(value)
    return [] if names == ["none"] else names


def report_to_args(names: list[str], run_name: str) -> list[str]:
    """``swift sft`` flags for ``names`` (SwanLab: local mode; ``extra_args: {swanlab_mode:
    cloud}`` comes later on the command line and wins)."""
    args = ["--report_to", *(names or ["none"])]
    if "swanlab" in names:
        args += ["--swanlab_mode", "local", "--swanlab_project", PROJECT,
                 "--swanlab_exp_name", run_name]  # fmt: skip
    return args


def check_installed(names: list[str]) -> None:
    """Stop before training when a tracker the config names is not installed here."""
    missing = [n for n in names if importlib.util.find_spec(TRACKERS[n]) is None]
    if missing:
        extras = ",".join(missing)
        raise StageError(
            f"report_to names {', '.join(missing)}, which is not installed where training runs: "
            f"pip install -e '.[{extras}]' (the pins in pyproject.toml), or leave it out of "
            "report_to"
        )


def tracking_env(names: list[str], run_dir, run_name: str, environ: Mapping) -> dict:
    """The environment that keeps the trackers off-line and inside the run's folder, unless
    ``environ`` (the trainer's environment) sets the variable itself."""
    run = Path(run_dir).resolve()
    want: dict[str, str] = {}
    if "wandb" in names:
        want.update(WANDB_MODE="offline", WANDB_DIR=str(run), WANDB_PROJECT=PROJECT,
                    WANDB_NAME=run_name, WANDB_SILENT="true")  # fmt: skip
    if "mlflow" in names:
        want.update(MLFLOW_TRACKING_URI=(run / "mlruns").as_uri(),
                    MLFLOW_EXPERIMENT_NAME=PROJECT)  # fmt: skip
    if "swanlab" in names:
        want.update(SWANLAB_LOG_DIR=str(run / "swanlog"))
    return {k: v for k, v in want.items() if k not in environ}
