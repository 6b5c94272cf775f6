"""Snakemake adapter: generate synthetic drawings (drawtune.synth)."""

from pathlib import Path

from drawtune.smk import setup
from drawtune.synth import write_dataset

if __name__ == "__main__":
    log = setup(snakemake)
    syn = snakemake.params.synthetic
    out = Path(snakemake.output.annotations).parent
    coco = write_dataset(
        out,
        n=syn["n"],
        seed=syn.get("seed", 0),
        width=syn.get("width", 640),
        workers=snakemake.threads,
    )
    log.info(
        "wrote %d drawings, %d boxes to %s", len(coco["images"]), len(coco["annotations"]), out
    )
