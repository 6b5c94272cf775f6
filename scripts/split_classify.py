"""Snakemake adapter: stable splits of one classification dataset (drawtune.data.split)."""

from drawtune.data.split import SPLITS, split_classify
from drawtune.smk import setup

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
        summary=snakemake.input.summary,
        max_rejected_fraction=p.max_rejected_fraction,
        leakage=p.leakage,
        ledger=p.ledger,  # not an output: Snakemake would delete it when the split fails
        leakage_out=out.leakage,
        leakage_copy=snakemake.log.leakage,
    )
