# The report: `snakemake --report results/report.html` opens on the leaderboard
# (report/workflow.rst includes home.html); a page and an error gallery per model, the data
# page and provenance are categories of their own (REPORT_CATEGORIES, in this order).


rule report_leaderboard:
    input:
        metrics=expand(rules.score_detections.output.metrics, model=DETECT_MODELS),
        classify=expand(
            rules.score_classification.output.metrics, model=CLASSIFY_MODELS
        ),
        telemetry=expand(rules.train_adapter.output.telemetry, experiment=TRAINED),
        split_summary=rules.split_dataset.output.summary if DETECT else [],
        classify_splits=expand(rules.split_classify.output.summary, dataset=CLASSIFY),
    output:
        page=report(
            f"{paths.REPORT}/metrics.html",
            caption="../report/leaderboard.rst",
            category=REPORT_CATEGORIES["leaderboard"],
            labels={"page": "leaderboard"},
        ),
        home=f"{paths.REPORT}/home.html",
    log:
        "logs/report_leaderboard/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        detect_models=DETECT_MODELS,
        classify_models=CLASSIFY_MODELS,
        experiments=TRAINED,
        classify_datasets=CLASSIFY,
        info={m: report_info(m) for m in MODELS},
        note=report_note(),
        price=gpu_hour_price(config["report"]["usd_per_gpu_hour"]),
    script:
        "../scripts/report_leaderboard.py"


rule report_compare:
    input:
        metrics=expand(rules.score_detections.output.metrics, model=DETECT_MODELS),
        details=expand(rules.score_detections.output.details, model=DETECT_MODELS),
        classify=expand(
            rules.score_classification.output.metrics, model=CLASSIFY_MODELS
        ),
        truth=rules.split_dataset.output.test_truth if DETECT else [],
    output:
        page=report(
            f"{paths.REPORT}/compare.html",
            caption="../report/compare.rst",
            category=REPORT_CATEGORIES["leaderboard"],
            labels={"page": "compare two models"},
        ),
    log:
        "logs/report_compare/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        detect_models=DETECT_MODELS,
        classify_models=CLASSIFY_MODELS,
        drawings=config["report"]["overlays"],
    script:
        "../scripts/report_compare.py"


# One model's page (sections: drawtune/report/pages.py) and its error gallery.
rule report_model:
    input:
        unpack(report_model_inputs),
    output:
        page=report(
            f"{paths.REPORT}/models/{{model}}.html",
            caption="../report/model.rst",
            category=REPORT_CATEGORIES["models"],
            subcategory="{model}",
            labels={"model": "{model}", "page": "model page"},
        ),
        gallery=report(
            f"{paths.REPORT}/gallery/{{model}}.html",
            caption="../report/gallery.rst",
            category=REPORT_CATEGORIES["gallery"],
            labels={"model": "{model}", "page": "error gallery"},
        ),
    log:
        "logs/report_model/{model}.log",
    wildcard_constraints:
        model=one_of(MODELS),
    conda:
        "../envs/drawtune.yaml"
    params:
        info=lambda wc: report_info(wc.model),
        drawings=config["report"]["overlays"],
    script:
        "../scripts/report_model.py"


# The data page (sections: drawtune/report/pages.py).
rule report_data:
    input:
        summaries=expand(
            rules.validate_annotations.output.summary,
            dataset=sorted(config["datasets"]),
        ),
        records=expand(
            rules.validate_annotations.output.records,
            dataset=sorted(config["datasets"]),
        ),
        rejects=expand(
            rules.validate_annotations.output.rejects,
            dataset=sorted(config["datasets"]),
        ),
        splits=expand(f"{paths.SPLITS}/{{split}}.jsonl", split=SPLITS) if DETECT else [],
        split_rejects=rules.split_dataset.output.rejects if DETECT else [],
        classify_splits=expand(
            f"{paths.CLASSIFY_SPLITS}/{{split}}.jsonl",
            dataset=CLASSIFY,
            split=SPLITS,
        ),
        classify_rejects=expand(rules.split_classify.output.rejects, dataset=CLASSIFY),
    output:
        page=report(
            f"{paths.REPORT}/data.html",
            caption="../report/data.rst",
            category=REPORT_CATEGORIES["data"],
            labels={"page": "data"},
        ),
    log:
        "logs/report_data/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        datasets=sorted(config["datasets"]),
        classify_datasets=CLASSIFY,
        classes=config["classes"],
    script:
        "../scripts/report_data.py"


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
            category=REPORT_CATEGORIES["provenance"],
            labels={"page": "config, versions, data hashes"},
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


# Near-duplicate drawings across splits (drawtune/report/leakage.py): a page of its own, so
# that a leakage setting rebuilds only this page.
rule report_leakage:
    input:
        detect=rules.split_dataset.output.leakage if DETECT else [],
        classify=expand(rules.split_classify.output.leakage, dataset=CLASSIFY),
    output:
        page=report(
            f"{paths.REPORT}/leakage.html",
            caption="../report/leakage.rst",
            category=REPORT_CATEGORIES["data"],
            labels={"page": "near-duplicates across splits"},
        ),
    log:
        "logs/report_leakage/report.log",
    conda:
        "../envs/drawtune.yaml"
    params:
        classify_datasets=CLASSIFY,
        pictures=config["leakage"]["pictures"],
    script:
        "../scripts/report_leakage.py"


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
            category=REPORT_CATEGORIES["models"],
            labels={"file": "box confidences and thresholds"},
        ),
        charts=report(
            directory(f"{paths.REPORT}/confidence"),
            patterns=["{model}__{chart}.png"],
            caption="../report/confidence_charts.rst",
            category=REPORT_CATEGORIES["models"],
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
