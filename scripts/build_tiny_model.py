"""Snakemake adapter: build a small random Qwen-VL model (drawtune.train.tiny_model)."""

from pathlib import Path

from drawtune.smk import setup
from drawtune.train.tiny_model import TinySize, build_tiny_model

if __name__ == "__main__":
    log = setup(snakemake)
    shape = dict(snakemake.params.tiny)
    seed = shape.pop("seed", 0)
    summary = build_tiny_model(
        snakemake.wildcards.family, Path(snakemake.output.model), size=TinySize(**shape), seed=seed
    )
    log.info("built %s", summary)
