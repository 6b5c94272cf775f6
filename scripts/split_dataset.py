"""Snakemake adapter: assign stable splits (drawtune.data.split)."""

from drawtune.data.split import SPLITS, split_dataset
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, out = snakemake.params, snakemake.output
    split_dataset(
        list(snakemake.input.records),
        p.classes,
        p.split["val"],
        p.split["test"],
        p.split["salt"],
        {s: out[s] for s in SPLITS},
        {s: out[f"{s}_truth"] for s in SPLITS},
        out.rejects,
        out.summary,
        summaries=list(snakemake.input.summaries),
        max_rejected_fraction=p.max_rejected_fraction,
        on_empty=p.on_empty,
        leakage=p.leakage,
        train_only=p.split.get("train_only", []),
        ledger=p.ledger,  # not an output: Snakemake would delete it when the split fails
        leakage_out=out.leakage,
        leakage_copy=snakemake.log.leakage,  # a log: kept when the job fails
    )
