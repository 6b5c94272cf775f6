"""Snakemake adapter: the config, package versions, data hashes and record accounting of a run
(drawtune.report.provenance)."""

from drawtune.jsonio import read_json
from drawtune.report import provenance
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    split_summary = read_json(inp.split_summary) if inp.split_summary else None
    classify_splits = {
        d: read_json(f) for d, f in zip(p.classify_datasets, inp.classify_splits, strict=True)
    }
    records = provenance.accounting(
        [read_json(f) for f in inp.summaries], split_summary, classify_splits
    )
    data = [*inp.summaries, *inp.data]
    provenance.provenance(p.config_text, data, out.provenance, records)
