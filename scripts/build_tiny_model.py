"""Snakemake adapter: build a small random Qwen-VL model (drawtune.tiny_model)."""

from pathlib import Path

from drawtune.smk import setup
from drawtune.tiny_model import build_tiny_model

if __name__ == "__main__":
    log = setup(snakemake)
    summary = build_tiny_model(snakemake.wildcards.family, Path(snakemake.output.model))
    log.info("built %s", summary)
