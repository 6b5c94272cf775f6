"""Glue for ``scripts/*.py``: logging into the rule's log file, clear failures."""

from __future__ import annotations

import logging
import sys
import traceback

from .coords import ResizeSpec
from .stages import StageError


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
        if issubclass(kind, StageError):
            logger.error("%s", value)
            print(f"drawtune: {value}", file=sys.stderr)
        else:
            logger.error("".join(traceback.format_exception(kind, value, tb)))
            print(f"drawtune: {kind.__name__}: {value} (traceback in {path})", file=sys.stderr)
        sys.exit(1)

    sys.excepthook = hook
    return logger


def resize_spec(params) -> ResizeSpec:
    return ResizeSpec(
        min_pixels=params.resize["min_pixels"], max_pixels=params.resize["max_pixels"]
    )


def detect_device() -> str:
    """``cuda`` when a GPU is visible to this job, else ``cpu`` (the ms-swift flags differ)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
