rule score_detections:
    input:
        results="results/predictions/{model}/test.jsonl",
        truth="results/splits/test.coco.json",
        manifest="results/swift/test.manifest.jsonl",
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
    conda:
        "../envs/drawtune.yaml"
    params:
        family=FAMILY,
        resize=resize_params(),
    script:
        "../scripts/score_detections.py"


rule report_assets:
    input:
        metrics=expand(rules.score_detections.output.metrics, model=MODELS),
        details=expand(rules.score_detections.output.details, model=MODELS),
        logging=expand(rules.train_adapter.output.logging, experiment=EXPERIMENTS),
        telemetry=expand(rules.train_adapter.output.telemetry, experiment=EXPERIMENTS),
        truth="results/splits/test.coco.json",
        summaries=expand(
            rules.validate_annotations.output.summary,
            dataset=sorted(config["datasets"]),
        ),
        split_summary="results/splits/summary.json",
        data=expand("results/swift/{split}.jsonl", split=SPLITS),
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
        models=MODELS,
        experiments=EXPERIMENTS,
        overlays=config["report"]["overlays"],
        note=report_note(),
        config_text=lambda wc: json.dumps(config, indent=2, sort_keys=True),
    script:
        "../scripts/report_assets.py"
