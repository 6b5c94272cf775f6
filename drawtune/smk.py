"""Glue for ``scripts/*.py``: logging into the rule's log file, clear failures, and where a GPU
stage runs."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path

from .coords import ResizeSpec
from .errors import DrawtuneError, StageError
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
    root = Path(snakemake.scriptdir).parent if getattr(snakemake, "scriptdir", None) else None
    runtime = snakemake.resources.get("runtime")  # minutes: the job's timeout
    run_remote(
        settings_path=settings_file(settings, Path.cwd(), root),
        rule=snakemake.rule,
        name=name,
        stage=stage,
        timeout_s=float(runtime) * 60 if runtime else None,
    )


def settings_file(value: str, workdir: Path, workflow_root: Path | None) -> Path:
    """The Vertex settings file a profile's ``vertex`` resource names: ``~`` and ``$VARS``
    expanded; a relative path is looked up in the working directory, then in the workflow's
    folder (the one holding the Snakefile), so ``profiles/vertex/vertex.yaml`` also works with
    ``--directory`` elsewhere."""
    path = Path(os.path.expandvars(os.path.expanduser(str(value))))
    if path.is_absolute():
        places = [path]
    else:
        places = [workdir / path] + ([workflow_root / path] if workflow_root else [])
    for place in places:
        if place.is_file():
            return place
    raise StageError(
        f"the vertex resource names {value!r}, which is no file ({', '.join(map(str, places))}):"
        " give the settings file's path in the profile's set-resources (absolute, or relative"
        " to the working directory or the workflow's folder)"
    )
