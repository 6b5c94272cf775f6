rule synth_drawings:
    output:
        annotations="resources/synth/{dataset}/annotations.json",
        images=directory("resources/synth/{dataset}/images"),
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
        annotations="resources/synth-classify/{dataset}/labels.csv",
        images=directory("resources/synth-classify/{dataset}/images"),
    log:
        "logs/synth_classify/{dataset}.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        synthetic=lambda wc: dataset_cfg(wc.dataset)["synthetic"],
    script:
        "../scripts/synth_classify.py"


rule validate_annotations:
    input:
        unpack(dataset_inputs),
    output:
        records="results/validated/{dataset}/records.jsonl",
        rejects="results/validated/{dataset}/rejects.jsonl",
        summary="results/validated/{dataset}/summary.json",
    log:
        "logs/validate_annotations/{dataset}.log",
    benchmark:
        "benchmarks/validate_annotations/{dataset}.tsv"
    conda:
        "../envs/drawtune.yaml"
    threads: 4
    params:
        dataset=dataset_params,
        files=dataset_files_stamp,
        classes=dataset_classes,
        validation=config["validation"],
        resize=resize_params(),
    script:
        "../scripts/validate_annotations.py"


rule split_dataset:
    input:
        records=expand(
            rules.validate_annotations.output.records,
            dataset=DETECT,
        ),
    output:
        **{s: f"results/splits/{s}.jsonl" for s in SPLITS},
        **{f"{s}_truth": f"results/splits/{s}.coco.json" for s in SPLITS},
        rejects="results/splits/rejects.jsonl",
        summary="results/splits/summary.json",
    log:
        "logs/split_dataset/split.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        split=config["split"],
        classes=config["classes"],
    script:
        "../scripts/split_dataset.py"


rule split_classify:
    input:
        records=rules.validate_annotations.output.records,
    output:
        **{s: f"results/splits/classify/{{dataset}}/{s}.jsonl" for s in SPLITS},
        rejects="results/splits/classify/{dataset}/rejects.jsonl",
        summary="results/splits/classify/{dataset}/summary.json",
    log:
        "logs/split_classify/{dataset}.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        split=config["split"],
    script:
        "../scripts/split_classify.py"


rule convert_annotations:
    input:
        records=split_records_file,
    output:
        jsonl="results/swift/{model}/{split}.jsonl",
        manifest="results/swift/{model}/{split}.manifest.jsonl",
    log:
        "logs/convert_annotations/{model}/{split}.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        task=setting("task"),
        family=setting("family"),
        prompt=setting("prompt"),
        resize=model_resize,
    script:
        "../scripts/convert_annotations.py"
