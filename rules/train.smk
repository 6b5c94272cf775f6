rule train_adapter:
    input:
        model=base_model_input,
        train=swift_data("train"),
        val=swift_data("val"),
        manifest=swift_data("train", "manifest"),
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
        base=setting("base_path"),
        family=setting("family"),
        resize=model_resize,
        train=lambda wc: config["experiments"][wc.experiment],
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
        base=setting("base_path"),
        family=setting("family"),
        resize=model_resize,
        tuner=setting("tuner"),
    script:
        "../scripts/merge_adapter.py"
