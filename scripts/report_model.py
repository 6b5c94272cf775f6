"""Snakemake adapter: one model's page and error gallery (drawtune.report.pages,
drawtune.report.gallery)."""

from pathlib import Path

from drawtune.jsonio import load_jsonl, read_json
from drawtune.report.gallery import classify_gallery, detection_gallery
from drawtune.report.pages import model_page
from drawtune.report.sections import ModelContext
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    info, detect = p.info, p.info["task"] == "detect"
    split = read_json(inp.split_summary)
    ctx = ModelContext(
        name=snakemake.wildcards.model,
        task=info["task"],
        metrics=read_json(inp.metrics),
        details=load_jsonl(inp.details),
        info=info,
        truth=read_json(inp.truth) if detect else None,
        counts={k: split[k] for k in ("train", "val", "test")},
        logging=load_jsonl(inp.logging) if "logging" in inp.keys() else [],
        telemetry=load_jsonl(inp.telemetry) if "telemetry" in inp.keys() else [],
        inputs=dict(inp.items()),
        params=dict(p.items()),
    )
    Path(out.page).write_text(model_page(ctx))
    if detect:
        gallery = detection_gallery(ctx.name, ctx.matching, p.drawings)
    else:
        gallery = classify_gallery(ctx.name, ctx.details, p.drawings)
    Path(out.gallery).write_text(gallery)
