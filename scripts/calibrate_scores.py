"""Snakemake adapter: a model's box score and threshold on the validation split
(drawtune.eval.calibrate)."""

from drawtune.eval.calibrate import calibrate
from drawtune.jsonio import load_jsonl, read_json, write_json
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p, inp = snakemake.params, snakemake.input
    if inp.results:
        rows, manifest = load_jsonl(inp.results), load_jsonl(inp.manifest)
    else:  # predict.logprobs is off: nothing to score the boxes with
        rows, manifest = [], []
    result = calibrate(
        rows,
        read_json(inp.truth),
        p.family,
        resize_spec(p),
        manifest=manifest,
        score=p.score if inp.results else "none",
    )
    write_json(result, snakemake.output.confidence)
    log.info(
        "scores %s (%s), threshold %s%s",
        result["scores"],
        result["chosen_by"],
        result["threshold"],
        f": {result['reason']}" if result["reason"] else "",
    )
