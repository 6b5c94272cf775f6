"""Snakemake adapter: the page comparing any two models (drawtune.report.compare), with the
error overlays of each detection model's worst test drawings (drawtune.report.gallery)."""

from pathlib import Path

from drawtune.eval.confusion import match_detections
from drawtune.jsonio import load_jsonl, read_json
from drawtune.report import charts
from drawtune.report.compare import compare_page
from drawtune.report.gallery import overlay_png
from drawtune.smk import setup

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    metrics = {m: read_json(f) for m, f in zip(p.detect_models, inp.metrics, strict=True)}
    classify = {m: read_json(f) for m, f in zip(p.classify_models, inp.classify, strict=True)}
    pictures = {}
    if p.detect_models:
        truth = read_json(inp.truth)
        matchings = {
            m: match_detections(truth, load_jsonl(f))
            for m, f in zip(p.detect_models, inp.details, strict=True)
        }
        # every model drawn on the drawings that are among any model's worst
        shown = sorted({d.image for mt in matchings.values() for d in mt.worst(p.drawings)})
        for m, mt in matchings.items():
            by_image = {d.image: d for d in mt.drawings}
            pictures[m] = {Path(i).stem: overlay_png(i, by_image[i]) for i in shown}
    for m, values in classify.items():
        pictures[m] = {"confusion matrix": charts.confusion_png(values)}
    Path(out.page).write_text(compare_page({**metrics, **classify}, pictures))
