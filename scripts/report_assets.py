"""Snakemake adapter: pictures and tables for the report (drawtune.report)."""

import json
import shutil
from pathlib import Path

from drawtune import report
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    metrics = {m: json.load(open(f)) for m, f in zip(p.models, inp.metrics, strict=True)}
    telemetry = dict(zip(p.experiments, inp.telemetry, strict=True))
    report.metrics_table(metrics, out.table, note=p.note, telemetry=telemetry)
    report.loss_curve(dict(zip(p.experiments, inp.logging, strict=True)), out.loss)
    report.per_class_chart(metrics, out.per_class)
    report.telemetry_chart(telemetry, out.telemetry)
    tmp = Path(out.overlays)
    if tmp.exists():
        shutil.rmtree(tmp)
    for m, details in zip(p.models, inp.details, strict=True):
        report.overlays(details, inp.truth, tmp, p.overlays, prefix=f"{m}__")
    report.compare_page(metrics, tmp, out.compare)
    data = [*inp.summaries, inp.split_summary, *inp.data]
    records = report.accounting(
        [json.load(open(f)) for f in inp.summaries], json.load(open(inp.split_summary))
    )
    report.provenance(p.config_text, data, out.provenance, records)
