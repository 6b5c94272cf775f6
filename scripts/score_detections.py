"""Snakemake adapter: parse answers, score boxes and compute COCO metrics (drawtune.eval.score)."""

from drawtune.eval.score import evaluate_answers
from drawtune.jsonio import dump_jsonl, load_jsonl, read_json, write_json
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p = snakemake.params
    confidence = read_json(snakemake.input.confidence)
    s = evaluate_answers(
        load_jsonl(snakemake.input.results),
        read_json(snakemake.input.truth),
        p.family,
        resize_spec(p),
        manifest=load_jsonl(snakemake.input.manifest),
        variant=confidence["scores"],
        threshold=confidence["threshold"],
    )
    write_json(s.metrics, snakemake.output.metrics)
    dump_jsonl(s.details, snakemake.output.details)
    write_json(s.curves, snakemake.output.curves)
    m = s.metrics
    log.info(
        "map50 %.4f (%.4f with every box 1.0), scores %s, unparseable %d of %d",
        m["map50"],
        m["map50_unscored"],
        m["scores"],
        m["n_unparseable"],
        m["n_images"],
    )
