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
    output:
        table=report(
            f"{paths.REPORT}/metrics.html",
            caption="../report/table.rst",
            category="Metrics",
            labels={"file": "metrics table"},
        ),
        loss=report(
            f"{paths.REPORT}/loss_curve.png",
            caption="../report/loss.rst",
            category="Training",
            labels={"file": "loss curve"},
        ),
        telemetry=report(
            f"{paths.REPORT}/telemetry.png",
            caption="../report/telemetry.rst",
            category="Training",
            labels={"file": "telemetry"},
        ),
        per_class=report(
            f"{paths.REPORT}/per_class_ap50.png",
            caption="../report/per_class.rst",
            category="Metrics",
            labels={"file": "per-class AP50"},
        ),
        overlays=report(
            directory(f"{paths.REPORT}/overlays"),
            patterns=["{model}__{name}.png"],
            caption="../report/overlays.rst",
            category="Drawings",
            labels={"model": "{model}", "drawing": "{name}"},
        ),
        confusion=report(
            directory(f"{paths.REPORT}/confusion"),
            patterns=["{model}.png"],
            caption="../report/confusion.rst",
            category="Metrics",
            labels={"model": "{model}", "file": "confusion matrix"},
        ),
        compare=report(
            f"{paths.REPORT}/compare.html",
            caption="../report/compare.rst",
            category="Metrics",
            labels={"file": "compare two models"},
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
        overlays=config["report"]["overlays"],
        note=report_note(),
    script:
        "../scripts/report_assets.py"


# The config as a run used it: a small page of its own, so that a config edit rebuilds only
# this page and not the pictures (every other rule gets only the keys it uses).
rule report_provenance:
    input:
        summaries=expand(
            rules.validate_annotations.output.summary,
            dataset=sorted(config["datasets"]),
        ),
        split_summary=rules.split_dataset.output.summary if DETECT else [],
        classify_splits=expand(rules.split_classify.output.summary, dataset=CLASSIFY),
        data=[
            *(
                expand(f"{paths.SPLITS}/{{split}}.jsonl", split=SPLITS)
                if DETECT
                else []
            ),
            *expand(
                f"{paths.CLASSIFY_SPLITS}/{{split}}.jsonl",
                dataset=CLASSIFY,
                split=SPLITS,
            ),
        ],
    output:
        provenance=report(
            f"{paths.REPORT}/provenance.html",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "config, versions, data hashes"},
        ),
    log:
        "logs/report_provenance/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        classify_datasets=CLASSIFY,
        config_text=lambda wc: json.dumps(config, indent=2, sort_keys=True),
    script:
        "../scripts/report_provenance.py"


# Box confidences (issue 17): per-class precision-recall curves and reliability diagrams on the
# test split, the box score and threshold chosen on the validation split.
rule report_confidence:
    input:
        confidence=expand(rules.calibrate_scores.output.confidence, model=DETECT_MODELS),
        metrics=expand(rules.score_detections.output.metrics, model=DETECT_MODELS),
        curves=expand(rules.score_detections.output.curves, model=DETECT_MODELS),
    output:
        table=report(
            f"{paths.REPORT}/confidence.html",
            caption="../report/confidence.rst",
            category="Metrics",
            labels={"file": "box confidences and thresholds"},
        ),
        charts=report(
            directory(f"{paths.REPORT}/confidence"),
            patterns=["{model}__{chart}.png"],
            caption="../report/confidence_charts.rst",
            category="Metrics",
            labels={"model": "{model}", "file": "{chart}"},
        ),
    log:
        "logs/report_confidence/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        models=DETECT_MODELS,
        note=report_note(),
    script:
        "../scripts/report_confidence.py"
