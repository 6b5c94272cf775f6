"""Snakemake adapter: the report's box-confidence page and charts (drawtune.report.confidence)."""

import shutil
from pathlib import Path

from drawtune.jsonio import read_json
from drawtune.report import confidence as report
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    confidence = {m: read_json(f) for m, f in zip(p.models, inp.confidence, strict=True)}
    metrics = {m: read_json(f) for m, f in zip(p.models, inp.metrics, strict=True)}
    charts = Path(out.charts)
    if charts.exists():
        shutil.rmtree(charts)
    charts.mkdir(parents=True)
    for m, f in zip(p.models, inp.curves, strict=True):
        curves = read_json(f)
        report.pr_chart(m, curves, charts / f"{m}__pr_curves.png")
        report.reliability_chart(m, curves, charts / f"{m}__reliability.png")
    report.threshold_table(confidence, metrics, out.table, note=p.note)
