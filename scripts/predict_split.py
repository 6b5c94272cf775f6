"""Snakemake adapter: `swift infer` over one split (drawtune.stages.predict)."""

from drawtune.smk import launch, resize_spec, setup

if __name__ == "__main__":
    setup(snakemake)
    p = snakemake.params
    launch(
        snakemake,
        "predict",
        family=p.family,
        model=p.model,
        dataset=snakemake.input.data,
        spec=resize_spec(p),
        batch_size=p.predict["batch_size"],
        max_new_tokens=p.predict["max_new_tokens"],
        result_out=snakemake.output.results,
        log_path=snakemake.log[0],
    )
