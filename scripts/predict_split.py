"""Snakemake adapter: `swift infer` over one split (drawtune.train.stages.Predict)."""

from drawtune.smk import resize_spec, run_stage, setup
from drawtune.train.stages import Predict

if __name__ == "__main__":
    setup(snakemake)
    p = snakemake.params
    stage = Predict(
        family=p.family,
        model=p.model,
        dataset=snakemake.input.data,
        spec=resize_spec(p),
        batch_size=p.predict["batch_size"],
        max_new_tokens=p.predict["max_new_tokens"],
        logprobs=p.predict.get("logprobs", False),
        top_logprobs=p.predict.get("top_logprobs", 0),
        vision_varlen=p.predict.get("vision_varlen", "auto"),
        result_out=snakemake.output.results,
        log_path=snakemake.log[0],
    )
    run_stage(snakemake, stage)
