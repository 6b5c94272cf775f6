"""Snakemake adapter: a tiled model's answers merged onto the sheets
(drawtune.eval.merge_tiles.sheet_predictions)."""

from drawtune.eval.calibrate import AUTO
from drawtune.eval.confidence import DEFAULT_VARIANT
from drawtune.eval.merge_tiles import TileMerge, sheet_predictions
from drawtune.jsonio import dump_jsonl, load_jsonl
from drawtune.smk import resize_spec, setup

if __name__ == "__main__":
    log = setup(snakemake)
    p = snakemake.params
    sheets = sheet_predictions(
        load_jsonl(snakemake.input.results),
        load_jsonl(snakemake.input.manifest),
        p.family,
        resize_spec(p),
        TileMerge.of(p.merge),
        # the boxes' scores from their tokens rank them in the merge (auto: the default score)
        variant=DEFAULT_VARIANT if p.score == AUTO else p.score,
    )
    dump_jsonl(sheets, snakemake.output.sheets)
    log.info(
        "%d sheets from %d views: %d boxes merged into %d (%s)",
        len(sheets),
        sum(s["n_views"] for s in sheets),
        sum(s["n_view_boxes"] for s in sheets),
        sum(len(s["boxes"]) for s in sheets),
        p.merge,
    )
