"""Snakemake adapter: stable splits of one classification dataset (drawtune.stages)."""

from drawtune.smk import setup
from drawtune.split import SPLITS
from drawtune.stages import split_classify

if __name__ == "__main__":
    setup(snakemake)
    p, out = snakemake.params, snakemake.output
    split_classify(
        snakemake.input.records,
        p.split["val"],
        p.split["test"],
        p.split["salt"],
        {s: out[s] for s in SPLITS},
        out.rejects,
        out.summary,
    )
