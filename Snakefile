# drawtune: annotated engineering drawings -> fine-tuned Qwen-VL detector, metrics, report.
#
# results/
#   validated/<dataset>/{records,rejects}.jsonl, summary.json   checked records, rejects with reasons
#   splits/{train,val,test}.jsonl, <split>.coco.json, rejects.jsonl, summary.json
#   swift/{train,val,test}.jsonl, <split>.manifest.jsonl        ms-swift data, image sizes
#   train/<experiment>/{adapter/,logging.jsonl,telemetry.jsonl,tensorboard/}  weights, curves
#   merged/<experiment>/                                        model ready for inference
#   predictions/<experiment|base>/test.jsonl                    swift infer results
#   metrics/<experiment|base>/test.json, test.details.jsonl     COCO metrics, parsed answers
#   report/                                                     pictures and tables of the report
# resources/synth/<dataset>/, resources/models/tiny-<family>/   generated demo data and model
# logs/<rule>/..., benchmarks/<rule>/...


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/score.smk"


report: "report/workflow.rst"


# Light rules run where snakemake runs (the login node with profiles/slurm); train, merge and
# predict are the cluster's jobs.
localrules:
    all,
    synth_drawings,
    build_tiny_model,
    validate_annotations,
    split_dataset,
    convert_annotations,
    score_detections,
    report_assets,


rule all:
    default_target: True
    input:
        all_targets(),
