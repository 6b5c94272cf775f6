"""Snakemake adapter: parse answers, score boxes and compute COCO metrics (drawtune.eval.score;
a tiled model's sheets, merged by rule merge_tiles: drawtune.eval.merge_tiles.sheet_answers)."""

from drawtune.eval.merge_tiles import sheet_answers
from drawtune.eval.score import read_answers, scoring_of
from drawtune.jsonio import dump_jsonl, load_jsonl, read_json, write_json
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p, inp = snakemake.params, snakemake.input
    confidence = read_json(inp.confidence)
    truth = read_json(inp.truth)
    rows = load_jsonl(inp.results)
    if p.tiled:
        answers = sheet_answers(rows, truth)
    else:
        answers = read_answers(
            rows, truth, p.family, resize_spec(p), manifest=load_jsonl(inp.manifest)
        )
    s = scoring_of(answers, truth, confidence["scores"], confidence["threshold"])
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
