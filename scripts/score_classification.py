"""Snakemake adapter: parse class answers, accuracy/macro-F1/confusion (drawtune.eval.score)."""

from drawtune.eval.score import score_classification
from drawtune.jsonio import dump_jsonl, load_jsonl, write_json
from drawtune.smk import setup

if __name__ == "__main__":
    log = setup(snakemake)
    metrics, details = score_classification(
        load_jsonl(snakemake.input.results),
        load_jsonl(snakemake.input.truth),
        list(snakemake.params.classes),
    )
    write_json(metrics, snakemake.output.metrics)
    dump_jsonl(details, snakemake.output.details)
    log.info(
        "accuracy %.4f, macro-F1 %.4f, invalid %d of %d",
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics["n_invalid"],
        metrics["n"],
    )
