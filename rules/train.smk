rule train_adapter:
    input:
        model=base_model_input,
        train=swift_data("train"),
        val=swift_data("val"),
        manifest=swift_data("train", "manifest"),
    output:
        adapter=protected(directory(paths.ADAPTER)),
        logging=f"{paths.TRAIN}/logging.jsonl",
        telemetry=f"{paths.TRAIN}/telemetry.jsonl",
        tensorboard=directory(f"{paths.TRAIN}/tensorboard"),
    log:
        "logs/train_adapter/{experiment}.log",
    benchmark:
        "benchmarks/train_adapter/{experiment}.tsv"
    conda:
        "../envs/swift.yaml"
    resources:
        gpu=1,
        cpus_per_gpu=8,
        mem_mb=64000,
        runtime=1440,
    params:
        base=setting("base_path"),
        family=setting("family"),
        resize=model_resize,
        train=lambda wc: train_block(wc.experiment),
        # ms-swift's checkpoints: kept when a run fails, so that the next attempt resumes from
        # the last complete one (an output would be deleted by Snakemake on failure)
        checkpoints=lambda wc: str(paths.checkpoints(wc.experiment)),
    script:
        "../scripts/train_adapter.py"


rule merge_adapter:
    input:
        model=base_model_input,
        adapter=rules.train_adapter.output.adapter,
    output:
        model=directory(paths.MERGED),
    log:
        "logs/merge_adapter/{experiment}.log",
    benchmark:
        "benchmarks/merge_adapter/{experiment}.tsv"
    conda:
        "../envs/swift.yaml"
    resources:
        gpu=1,
        cpus_per_gpu=8,
        mem_mb=64000,
        runtime=120,
    params:
        base=setting("base_path"),
        family=setting("family"),
        resize=model_resize,
        tuner=setting("tuner"),
        # what the adapter must record having been trained with, checked before it is merged
        trained_with=trained_settings,
    script:
        "../scripts/merge_adapter.py"
