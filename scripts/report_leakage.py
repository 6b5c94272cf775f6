"""Snakemake adapter: the near-duplicates page of the report (drawtune.report.leakage)."""

from drawtune.report.leakage import leakage_page
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, inp = snakemake.params, snakemake.input
    reports = {"detection": inp.detect} if inp.detect else {}
    for name, path in zip(p.classify_datasets, inp.classify, strict=True):
        reports[f"classification {name}"] = path
    leakage_page(reports, snakemake.output.page, pictures=p.pictures)
