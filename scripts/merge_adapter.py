"""Snakemake adapter: merge a LoRA adapter with `swift export` (drawtune.stages.merge)."""

from drawtune.smk import launch, resize_spec, setup

if __name__ == "__main__":
    setup(snakemake)
    p = snakemake.params
    launch(
        snakemake,
        "merge",
        family=p.family,
        base=p.base,
        adapter=snakemake.input.adapter,
        tuner=p.tuner,
        spec=resize_spec(p),
        merged_out=snakemake.output.model,
        log_path=snakemake.log[0],
    )
