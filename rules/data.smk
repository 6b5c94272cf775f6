rule validate_annotations:
    input:
        unpack(dataset_inputs),
    output:
        records=f"{paths.VALIDATED}/records.jsonl",
        rejects=f"{paths.VALIDATED}/rejects.jsonl",
        summary=f"{paths.VALIDATED}/summary.json",
        # converted pages the records point to, and image facts by file identity: kept (not
        # deleted) when the rule reruns, so that only new or changed drawings are decoded
        normalised=update(directory(paths.NORMALISED)),
        cache=update(directory(paths.IMAGE_CACHE)),
    log:
        log="logs/validate_annotations/{dataset}.log",
        # a copy of the rejects that Snakemake keeps when the job fails (outputs are deleted)
        rejects="logs/validate_annotations/{dataset}.rejects.jsonl",
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
        resize=dataset_resize,
        fingerprints=config["leakage"]["fingerprints"],
    script:
        "../scripts/validate_annotations.py"


rule split_dataset:
    input:
        records=expand(
            rules.validate_annotations.output.records,
            dataset=DETECT,
        ),
        summaries=expand(
            rules.validate_annotations.output.summary,
            dataset=DETECT,
        ),
    output:
        **{s: f"{paths.SPLITS}/{s}.jsonl" for s in SPLITS},
        **{f"{s}_truth": f"{paths.SPLITS}/{s}.coco.json" for s in SPLITS},
        rejects=f"{paths.SPLITS}/rejects.jsonl",
        summary=f"{paths.SPLITS}/summary.json",
        leakage=f"{paths.SPLITS}/leakage.json",
    log:
        log="logs/split_dataset/split.log",
        # the leakage report, kept when the split fails (on_leak: fail)
        leakage="logs/split_dataset/leakage.json",
    benchmark:
        "benchmarks/split_dataset/split.tsv"
    conda:
        "../envs/drawtune.yaml"
    params:
        split=split_params(),
        classes=config["classes"],
        max_rejected_fraction=config["validation"]["max_rejected_fraction"],
        on_empty=split_on_empty(),
        leakage=leakage_params(),
        ledger=paths.SPLIT_LEDGER,
    script:
        "../scripts/split_dataset.py"


rule split_classify:
    input:
        records=rules.validate_annotations.output.records,
        summary=rules.validate_annotations.output.summary,
    output:
        **{s: f"{paths.CLASSIFY_SPLITS}/{s}.jsonl" for s in SPLITS},
        rejects=f"{paths.CLASSIFY_SPLITS}/rejects.jsonl",
        summary=f"{paths.CLASSIFY_SPLITS}/summary.json",
        leakage=f"{paths.CLASSIFY_SPLITS}/leakage.json",
    log:
        log="logs/split_classify/{dataset}.log",
        leakage="logs/split_classify/{dataset}.leakage.json",
    conda:
        "../envs/drawtune.yaml"
    params:
        split=config["split"],
        max_rejected_fraction=config["validation"]["max_rejected_fraction"],
        leakage=leakage_params(),
        ledger=lambda wc: paths.CLASSIFY_LEDGER.format(dataset=wc.dataset),
    script:
        "../scripts/split_classify.py"


rule convert_annotations:
    input:
        records=split_records_file,
        # an experiment's train_datasets: its train and val splits keep only their records
        datasets=train_datasets_input,
    output:
        jsonl=paths.SWIFT_DATA,
        manifest=paths.SWIFT_MANIFEST,
        # a tiled model's view images (tiling: in config); empty for the others
        tiles=directory(paths.SWIFT_TILES),
    log:
        "logs/convert_annotations/{model}/{split}.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        task=setting("task"),
        family=setting("family"),
        prompt=setting("prompt"),
        resize=model_resize,
        tiling=tiling_of,
        train_datasets=train_datasets_of,
    script:
        "../scripts/convert_annotations.py"
