"""Snakemake adapter: a model's box score and threshold on the validation split
(drawtune.eval.calibrate)."""

from drawtune.eval.calibrate import calibrate, calibrate_answers, unscored
from drawtune.eval.merge_tiles import sheet_answers
from drawtune.jsonio import load_jsonl, read_json, write_json
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p, inp = snakemake.params, snakemake.input
    if inp.results and p.tiled:  # a tiled model's answers merged on the validation sheets
        truth = read_json(inp.truth)
        result = calibrate_answers(sheet_answers(load_jsonl(inp.results), truth), truth, p.score)
    elif inp.results:
        result = calibrate(
            load_jsonl(inp.results),
            read_json(inp.truth),
            p.family,
            resize_spec(p),
            manifest=load_jsonl(inp.manifest),
            score=p.score,
        )
    else:  # no validation answers were asked for
        result = unscored("predict.logprobs is off: every box is scored 1.0")
    write_json(result, snakemake.output.confidence)
    log.info(
        "scores %s (%s), threshold %s%s",
        result["scores"],
        result["chosen_by"],
        result["threshold"],
        f": {result['reason']}" if result["reason"] else "",
    )
