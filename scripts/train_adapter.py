"""Snakemake adapter: `swift sft` for one experiment (drawtune.train.stages.Train)."""

from drawtune.smk import resize_spec, run_stage, setup
from drawtune.train.checkpoints import adapter_settings
from drawtune.train.stages import Train

if __name__ == "__main__":
    setup(snakemake)
    p, inp, out = snakemake.params, snakemake.input, snakemake.output
    stage = Train(
        family=p.family,
        base=p.base,
        train_jsonl=inp.train,
        val_jsonl=inp.val,
        train_cfg=p.train,
        spec=resize_spec(p),
        adapter_out=out.adapter,
        logging_out=out.logging,
        tensorboard_out=out.tensorboard,
        log_path=snakemake.log[0],
        run_dir=p.checkpoints,
        manifest_jsonl=inp.manifest,
        telemetry_out=out.telemetry,
        settings=adapter_settings(p.base, p.family, p.resize, p.train),
    )
    run_stage(snakemake, stage)
