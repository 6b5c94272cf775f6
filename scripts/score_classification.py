"""Snakemake adapter: parse class answers, accuracy/macro-F1/confusion (drawtune.classify)."""

from drawtune.classify import score_classification
from drawtune.convert import dump_jsonl, load_jsonl
from drawtune.smk import setup
from drawtune.stages import write_json

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
