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


rule all:
    default_target: True
    input:
        all_targets(),
