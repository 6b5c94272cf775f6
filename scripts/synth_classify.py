"""Snakemake adapter: generate labelled synthetic drawings (drawtune.data.synth_classify)."""

from pathlib import Path

from drawtune.data.synth_classify import synth_classify
from drawtune.smk import setup

if __name__ == "__main__":
    log = setup(snakemake)
    syn = snakemake.params.synthetic
    out = snakemake.output
    synth_classify(
        syn["n"], syn.get("seed", 0), syn.get("width", 640), Path(out.images), out.annotations
    )
    log.info("wrote %d labelled drawings to %s", syn["n"], out.images)
