rule score_detections:
    input:
        results="results/predictions/{model}/test.jsonl",
        truth=rules.split_dataset.output.test_truth,
        manifest=swift_data("test", "manifest"),
    output:
        metrics=report(
            "results/metrics/{model}/test.json",
            caption="../report/metrics.rst",
            category="Metrics",
            subcategory="{model}",
            labels={"model": "{model}", "file": "metrics (JSON)"},
        ),
        details="results/metrics/{model}/test.details.jsonl",
    log:
        "logs/score_detections/{model}.log",
    wildcard_constraints:
        model=one_of(DETECT_MODELS),
    conda:
        "../envs/drawtune.yaml"
    params:
        family=setting("family"),
        resize=model_resize,
    script:
        "../scripts/score_detections.py"


rule score_classification:
    input:
        results="results/predictions/{model}/test.jsonl",
        truth=classify_truth,
    output:
        metrics=report(
            "results/metrics/{model}/test.json",
            caption="../report/metrics_classify.rst",
            category="Metrics",
            subcategory="{model}",
            labels={"model": "{model}", "file": "metrics (JSON)"},
        ),
        details="results/metrics/{model}/test.details.jsonl",
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


rule report_assets:
    input:
        metrics=expand(rules.score_detections.output.metrics, model=DETECT_MODELS),
        details=expand(rules.score_detections.output.details, model=DETECT_MODELS),
        classify=expand(
            rules.score_classification.output.metrics, model=CLASSIFY_MODELS
        ),
        logging=expand(rules.train_adapter.output.logging, experiment=TRAINED),
        telemetry=expand(rules.train_adapter.output.telemetry, experiment=TRAINED),
        truth=rules.split_dataset.output.test_truth if DETECT else [],
        summaries=expand(
            rules.validate_annotations.output.summary,
            dataset=sorted(config["datasets"]),
        ),
        split_summary=rules.split_dataset.output.summary if DETECT else [],
        classify_splits=expand(rules.split_classify.output.summary, dataset=CLASSIFY),
        data=[
            *(expand("results/splits/{split}.jsonl", split=SPLITS) if DETECT else []),
            *expand(
                "results/splits/classify/{dataset}/{split}.jsonl",
                dataset=CLASSIFY,
                split=SPLITS,
            ),
        ],
    output:
        table=report(
            "results/report/metrics.html",
            caption="../report/table.rst",
            category="Metrics",
            labels={"file": "metrics table"},
        ),
        loss=report(
            "results/report/loss_curve.png",
            caption="../report/loss.rst",
            category="Training",
            labels={"file": "loss curve"},
        ),
        telemetry=report(
            "results/report/telemetry.png",
            caption="../report/telemetry.rst",
            category="Training",
            labels={"file": "telemetry"},
        ),
        per_class=report(
            "results/report/per_class_ap50.png",
            caption="../report/per_class.rst",
            category="Metrics",
            labels={"file": "per-class AP50"},
        ),
        overlays=report(
            directory("results/report/overlays"),
            patterns=["{model}__{name}.png"],
            caption="../report/overlays.rst",
            category="Drawings",
            labels={"model": "{model}", "drawing": "{name}"},
        ),
        confusion=report(
            directory("results/report/confusion"),
            patterns=["{model}.png"],
            caption="../report/confusion.rst",
            category="Metrics",
            labels={"model": "{model}", "file": "confusion matrix"},
        ),
        compare=report(
            "results/report/compare.html",
            caption="../report/compare.rst",
            category="Metrics",
            labels={"file": "compare two models"},
        ),
        provenance=report(
            "results/report/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "config, versions, data hashes"},
        ),
    log:
        "logs/report_assets/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        models=DETECT_MODELS,
        classify_models=CLASSIFY_MODELS,
        experiments=TRAINED,
        untrained=[m for m in MODELS if SETTINGS[m]["tuner"] == "none"],
        classify_datasets=CLASSIFY,
        overlays=config["report"]["overlays"],
        note=report_note(),
        config_text=lambda wc: json.dumps(config, indent=2, sort_keys=True),
    script:
        "../scripts/report_assets.py"
