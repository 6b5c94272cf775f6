"""Snakemake adapter: pictures and tables for the report (drawtune.report)."""

import shutil
from pathlib import Path

from drawtune.jsonio import read_json
from drawtune.report import charts, drawings, tables
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
    metrics = {m: read_json(f) for m, f in zip(p.models, inp.metrics, strict=True)}
    classify = {m: read_json(f) for m, f in zip(p.classify_models, inp.classify, strict=True)}
    telemetry = dict(zip(p.experiments, inp.telemetry, strict=True))
    tables.metrics_table(
        metrics,
        out.table,
        note=p.note,
        telemetry=telemetry,
        classify=classify,
        untrained=p.untrained,
    )
    charts.loss_curve(dict(zip(p.experiments, inp.logging, strict=True)), out.loss)
    charts.per_class_chart(metrics, out.per_class)
    charts.telemetry_chart(telemetry, out.telemetry)
    overlays = fresh_dir(out.overlays)
    for m, details in zip(p.models, inp.details, strict=True):
        drawings.overlays(details, inp.truth, overlays, p.overlays, prefix=f"{m}__")
    confusion = fresh_dir(out.confusion)
    for m, values in classify.items():
        charts.confusion_chart(values, confusion / f"{m}.png")
    tables.compare_page({**metrics, **classify}, overlays, out.compare, pictures=confusion)
