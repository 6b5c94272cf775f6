"""Snakemake adapter: `swift sft` for one experiment (drawtune.stages.train)."""

from drawtune.smk import detect_device, resize_spec, setup
from drawtune.stages import train

if __name__ == "__main__":
    setup(snakemake)
    p, out = snakemake.params, snakemake.output
    train(
        family=p.family,
        base=p.base,
        train_jsonl=snakemake.input.train,
        val_jsonl=snakemake.input.val,
        train_cfg=p.train,
        spec=resize_spec(p),
        run_dir=p.run_dir,
        adapter_out=out.adapter,
        logging_out=out.logging,
        tensorboard_out=out.tensorboard,
        log_path=snakemake.log[0],
        device=detect_device(),
        manifest_jsonl=snakemake.input.manifest,
        telemetry_out=out.telemetry,
    )
