"""Snakemake adapter: merge a LoRA adapter with `swift export` (drawtune.train.stages.Merge);
a tiled experiment's tiling is recorded next to the merged model
(drawtune.data.tiling.write_model_tiling)."""

from drawtune.data.tiling import Tiling, write_model_tiling
from drawtune.smk import resize_spec, run_stage, setup
from drawtune.train.stages import Merge

if __name__ == "__main__":
    setup(snakemake)
    p = snakemake.params
    stage = Merge(
        family=p.family,
        base=p.base,
        adapter=snakemake.input.adapter,
        tuner=p.tuner,
        spec=resize_spec(p),
        merged_out=snakemake.output.model,
        log_path=snakemake.log[0],
        trained_with=p.trained_with,
    )
    run_stage(snakemake, stage)
    # the tiling travels with the model: `drawtune predict` and `serve` read it there
    trained = (p.trained_with or {}).get("train") or {}
    write_model_tiling(snakemake.output.model, Tiling.of(trained.get("tiling")))
