"""Snakemake adapter: parse answers and compute COCO metrics (drawtune.stages.score)."""

import json

from drawtune.convert import dump_jsonl, load_jsonl
from drawtune.smk import resize_spec, setup
from drawtune.stages import score, write_json

if __name__ == "__main__":
    log = setup(snakemake)
    p = snakemake.params
    metrics, details = score(
        load_jsonl(snakemake.input.results),
        json.load(open(snakemake.input.truth)),
        p.family,
        resize_spec(p),
        manifest=load_jsonl(snakemake.input.manifest),
    )
    write_json(metrics, snakemake.output.metrics)
    dump_jsonl(details, snakemake.output.details)
    log.info(
        "map50 %.4f, unparseable %d of %d",
        metrics["map50"],
        metrics["n_unparseable"],
        metrics["n_images"],
    )
