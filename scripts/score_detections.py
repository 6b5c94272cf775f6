"""Snakemake adapter: parse answers and compute COCO metrics (drawtune.eval.score; a tiled
model's sheets, merged by rule merge_tiles: drawtune.eval.merge_tiles.score_sheets)."""

from drawtune.eval.merge_tiles import score_sheets
from drawtune.eval.score import score
from drawtune.jsonio import dump_jsonl, load_jsonl, read_json, write_json
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p = snakemake.params
    if p.tiled:
        metrics, details = score_sheets(
            load_jsonl(snakemake.input.results), read_json(snakemake.input.truth)
        )
    else:
        metrics, details = score(
            load_jsonl(snakemake.input.results),
            read_json(snakemake.input.truth),
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
