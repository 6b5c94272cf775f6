rule synth_drawings:
    output:
        annotations=f"{paths.SYNTH}/annotations.json",
        images=directory(f"{paths.SYNTH}/images"),
    log:
        "logs/synth_drawings/{dataset}.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        synthetic=lambda wc: dataset_cfg(wc.dataset)["synthetic"],
    script:
        "../scripts/synth_drawings.py"


rule synth_classify:
    output:
        annotations=f"{paths.SYNTH_CLASSIFY}/labels.csv",
        images=directory(f"{paths.SYNTH_CLASSIFY}/images"),
    log:
        "logs/synth_classify/{dataset}.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        synthetic=lambda wc: dataset_cfg(wc.dataset)["synthetic"],
    script:
        "../scripts/synth_classify.py"


rule build_tiny_model:
    output:
        model=directory(paths.TINY_MODEL),
    log:
        "logs/build_tiny_model/{family}.log",
    benchmark:
        "benchmarks/build_tiny_model/{family}.tsv"
    conda:
        "../envs/swift.yaml"
    params:
        tiny=config["model"]["tiny"],
    script:
        "../scripts/build_tiny_model.py"
