"""Snakemake adapter: pictures and tables for the report (drawtune.report)."""

import json
import shutil
from pathlib import Path

from drawtune import report
from drawtune.classify import confusion_chart
from drawtune.smk import setup


def fresh_dir(path) -> Path:
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    metrics = {m: json.load(open(f)) for m, f in zip(p.models, inp.metrics, strict=True)}
    classify = {m: json.load(open(f)) for m, f in zip(p.classify_models, inp.classify, strict=True)}
    telemetry = dict(zip(p.experiments, inp.telemetry, strict=True))
    report.metrics_table(
        metrics,
        out.table,
        note=p.note,
        telemetry=telemetry,
        classify=classify,
        untrained=p.untrained,
    )
    report.loss_curve(dict(zip(p.experiments, inp.logging, strict=True)), out.loss)
    report.per_class_chart(metrics, out.per_class)
    report.telemetry_chart(telemetry, out.telemetry)
    overlays = fresh_dir(out.overlays)
    for m, details in zip(p.models, inp.details, strict=True):
        report.overlays(details, inp.truth, overlays, p.overlays, prefix=f"{m}__")
    confusion = fresh_dir(out.confusion)
    for m, values in classify.items():
        confusion_chart(values, confusion / f"{m}.png")
    report.compare_page({**metrics, **classify}, overlays, out.compare, pictures=confusion)
    data = [*inp.summaries, *inp.data]
    split_summary = json.load(open(inp.split_summary)) if inp.split_summary else None
    classify_splits = {
        d: json.load(open(f)) for d, f in zip(p.classify_datasets, inp.classify_splits, strict=True)
    }
    records = report.accounting(
        [json.load(open(f)) for f in inp.summaries], split_summary, classify_splits
    )
    report.provenance(p.config_text, data, out.provenance, records)
