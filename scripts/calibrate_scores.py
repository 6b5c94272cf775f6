"""Snakemake adapter: a model's box score and threshold on the validation split
(drawtune.eval.calibrate)."""

from drawtune.eval.calibrate import calibrate, unscored
from drawtune.jsonio import load_jsonl, read_json, write_json
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p, inp = snakemake.params, snakemake.input
    if inp.results:
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
