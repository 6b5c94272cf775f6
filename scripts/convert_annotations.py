"""Snakemake adapter: one split to ms-swift JSONL (drawtune.data.convert.convert_split)."""

from drawtune.data.convert import convert_split
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p = snakemake.params
    n = convert_split(
        snakemake.input.records,
        p.family,
        p.prompt,
        resize_spec(p),
        snakemake.output.jsonl,
        snakemake.output.manifest,
        task=p.task,
    )
    log.info("converted %d records for %s", n, p.family)
