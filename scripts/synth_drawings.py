"""Snakemake adapter: generate synthetic drawings (drawtune.data.synth)."""

from pathlib import Path

from drawtune.data.synth import write_dataset
from drawtune.smk import setup

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
        object_scale=syn.get("object_scale", 1.0),
        max_views=syn.get("max_views"),
    )
    log.info(
        "wrote %d drawings, %d boxes to %s", len(coco["images"]), len(coco["annotations"]), out
    )
