rule predict_split:
    input:
        model=model_for,
        data=rules.convert_annotations.output.jsonl,
    output:
        results=f"{paths.PREDICTIONS}/{{split}}.jsonl",
    log:
        "logs/predict_split/{model}/{split}.log",
    benchmark:
        "benchmarks/predict_split/{model}/{split}.tsv"
    conda:
        "../envs/swift.yaml"
    resources:
        gpu=1,
        cpus_per_gpu=8,
        mem_mb=32000,
        runtime=240,
    params:
        model=model_path_for,
        family=setting("family"),
        resize=model_resize,
        predict=predict_settings,
    script:
        "../scripts/predict_split.py"


rule merge_tiles:
    input:
        results=rules.predict_split.output.results,
        manifest=rules.convert_annotations.output.manifest,
    output:
        sheets=paths.SHEET_PREDICTIONS,
    log:
        "logs/merge_tiles/{model}/{split}.log",
    wildcard_constraints:
        model=one_of(TILED),
    conda:
        "../envs/drawtune.yaml"
    params:
        family=setting("family"),
        resize=model_resize,
        merge=merge_of,
        # the box score that ranks the boxes merged across tiles (auto: the default one)
        score=config["confidence"]["score"],
    script:
        "../scripts/merge_tiles.py"


# The box score and its threshold, chosen on the validation split's answers; kept beside the
# adapter, where the test split's scoring, `drawtune predict` and `drawtune serve` read them.
rule calibrate_scores:
    input:
        results=validation_answers("results"),
        truth=rules.split_dataset.output.val_truth,
        manifest=validation_answers("manifest"),
    output:
        confidence=paths.CONFIDENCE,
    log:
        "logs/calibrate_scores/{model}.log",
    wildcard_constraints:
        model=one_of(DETECT_MODELS),
    conda:
        "../envs/drawtune.yaml"
    params:
        family=setting("family"),
        resize=model_resize,
        score=config["confidence"]["score"],
        tiled=lambda wc: wc.model in TILED,
    script:
        "../scripts/calibrate_scores.py"


rule score_detections:
    input:
        results=scored_predictions,
        truth=rules.split_dataset.output.test_truth,
        manifest=swift_data("test", "manifest"),
        confidence=rules.calibrate_scores.output.confidence,
    output:
        metrics=report(
            f"{paths.METRICS}/test.json",
            caption="../report/metrics.rst",
            category=REPORT_CATEGORIES["models"],
            subcategory="{model}",
            labels={"model": "{model}", "page": "metrics (JSON)"},
        ),
        details=f"{paths.METRICS}/test.details.jsonl",
        curves=f"{paths.METRICS}/test.curves.json",
    log:
        "logs/score_detections/{model}.log",
    wildcard_constraints:
        model=one_of(DETECT_MODELS),
    conda:
        "../envs/drawtune.yaml"
    params:
        family=setting("family"),
        resize=model_resize,
        tiled=lambda wc: wc.model in TILED,
    script:
        "../scripts/score_detections.py"


rule score_classification:
    input:
        results=f"{paths.PREDICTIONS}/test.jsonl",
        truth=classify_truth,
    output:
        metrics=report(
            f"{paths.METRICS}/test.json",
            caption="../report/metrics_classify.rst",
            category=REPORT_CATEGORIES["models"],
            subcategory="{model}",
            labels={"model": "{model}", "page": "metrics (JSON)"},
        ),
        details=f"{paths.METRICS}/test.details.jsonl",
    log:
        "logs/score_classification/{model}.log",
    wildcard_constraints:
        model=one_of(CLASSIFY_MODELS),
    conda:
        "../envs/drawtune.yaml"
    params:
        classes=setting("classes"),
    script:
        "../scripts/score_classification.py"
