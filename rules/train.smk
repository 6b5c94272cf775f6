rule train_adapter:
    input:
        model=base_model_input,
        train="results/swift/train.jsonl",
        val="results/swift/val.jsonl",
        manifest="results/swift/train.manifest.jsonl",
    output:
        adapter=directory("results/train/{experiment}/adapter"),
        logging="results/train/{experiment}/logging.jsonl",
        telemetry="results/train/{experiment}/telemetry.jsonl",
        tensorboard=directory("results/train/{experiment}/tensorboard"),
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
        base=base_model(),
        family=FAMILY,
        resize=resize_params(),
        train=lambda wc: experiment_cfg(wc.experiment),
        run_dir=lambda wc, output: str(Path(output.logging).parent / "run"),
    script:
        "../scripts/train_adapter.py"


rule merge_adapter:
    input:
        model=base_model_input,
        adapter=rules.train_adapter.output.adapter,
    output:
        model=directory("results/merged/{experiment}"),
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
        base=base_model(),
        family=FAMILY,
        resize=resize_params(),
        tuner=lambda wc: experiment_cfg(wc.experiment)["tuner"],
    script:
        "../scripts/merge_adapter.py"
