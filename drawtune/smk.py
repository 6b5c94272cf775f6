"""Glue for ``scripts/*.py``: logging into the rule's log file, clear failures, and where a GPU
stage runs."""

from __future__ import annotations

import logging
import sys
import traceback

from .coords import ResizeSpec
from .errors import DrawtuneError
from .train.device import detect_device
from .train.stages import GpuStage
from .vertex.job import run_remote


def setup(snakemake) -> logging.Logger:
    """Send logging and uncaught tracebacks to the rule's first log file."""
    path = snakemake.log[0]
    logging.basicConfig(
        filename=path,
        filemode="w",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        force=True,
    )
    logger = logging.getLogger("drawtune")

    def hook(kind, value, tb):
        if issubclass(kind, DrawtuneError):
            logger.error("%s", value)
            print(f"drawtune: {value}", file=sys.stderr)
        else:
            logger.error("".join(traceback.format_exception(kind, value, tb)))
            print(f"drawtune: {kind.__name__}: {value} (traceback in {path})", file=sys.stderr)
        sys.exit(1)

    sys.excepthook = hook
    return logger


def resize_spec(params) -> ResizeSpec:
    """The rule's ``resize`` param as a spec."""
    return ResizeSpec(
        min_pixels=params.resize["min_pixels"], max_pixels=params.resize["max_pixels"]
    )


def run_stage(snakemake, stage: GpuStage) -> None:
    """Run a GPU stage here, or as a Vertex AI CustomJob when the profile gives the rule a
    ``vertex`` resource (the settings file). Rule names and outputs are the same either way;
    resources are no rerun trigger, so switching profiles reruns nothing."""
    settings = snakemake.resources.get("vertex") if hasattr(snakemake, "resources") else None
    if not settings:
        stage.run(device=detect_device())
        return
    name = "-".join(str(v) for v in snakemake.wildcards) or snakemake.rule
    run_remote(settings_path=settings, rule=snakemake.rule, name=name, stage=stage)
