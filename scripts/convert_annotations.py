"""Snakemake adapter: one split to ms-swift JSONL (drawtune.stages.convert_split)."""

from drawtune.smk import resize_spec, setup
from drawtune.stages import convert_split

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
