"""Snakemake adapter: one split to ms-swift JSONL (drawtune.data.convert.convert_split; a tiled
model's: drawtune.data.tiling.convert_tiled_split); an experiment's train_datasets keep only
their records of the pooled train and val splits (drawtune.data.split.keep_datasets)."""

import tempfile
from pathlib import Path

from drawtune.data.convert import convert_split
from drawtune.data.split import keep_datasets
from drawtune.data.tiling import Tiling, convert_tiled_split
from drawtune.errors import StageError
from drawtune.smk import resize_spec, setup


def convert(records: str) -> int:
    p = snakemake.params
    out = snakemake.output
    tiling = Tiling.of(p.tiling)
    if tiling is None:
        Path(out.tiles).mkdir(parents=True, exist_ok=True)
        n = convert_split(
            records, p.family, p.prompt, resize_spec(p), out.jsonl, out.manifest, task=p.task
        )
        log.info("converted %d records for %s", n, p.family)
        return n
    n = convert_tiled_split(
        records, p.family, p.prompt, resize_spec(p), tiling, out.jsonl, out.manifest, out.tiles
    )
    log.info("converted to %d views (tiles %s) for %s", n, tiling, p.family)
    return n


def main() -> None:
    chosen = snakemake.input.datasets
    if not chosen:
        convert(snakemake.input.records)
        return
    split, names = snakemake.wildcards.split, ", ".join(snakemake.params.train_datasets)
    with tempfile.TemporaryDirectory(prefix="drawtune-convert-") as tmp:
        kept_file = Path(tmp) / "records.jsonl"
        kept, read = keep_datasets(snakemake.input.records, chosen, kept_file)
        log.info("train_datasets %s: %d of the %s split's %d records", names, kept, split, read)
        if kept == 0 and split == "train":
            raise StageError(f"train_datasets {names}: none of the train split's records")
        convert(str(kept_file))


if __name__ == "__main__":
    log = setup(snakemake)
    main()
