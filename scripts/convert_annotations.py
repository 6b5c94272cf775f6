"""Snakemake adapter: one split to ms-swift JSONL (drawtune.data.convert.convert_split; a tiled
model's: drawtune.data.tiling.convert_tiled_split)."""

from pathlib import Path

from drawtune.data.convert import convert_split
from drawtune.data.tiling import Tiling, convert_tiled_split
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p = snakemake.params
    out = snakemake.output
    tiling = Tiling.of(p.tiling)
    if tiling is None:
        Path(out.tiles).mkdir(parents=True, exist_ok=True)
        n = convert_split(
            snakemake.input.records,
            p.family,
            p.prompt,
            resize_spec(p),
            out.jsonl,
            out.manifest,
            task=p.task,
        )
        log.info("converted %d records for %s", n, p.family)
    else:
        n = convert_tiled_split(
            snakemake.input.records,
            p.family,
            p.prompt,
            resize_spec(p),
            tiling,
            out.jsonl,
            out.manifest,
            out.tiles,
        )
        log.info("converted to %d views (tiles %s) for %s", n, tiling, p.family)
