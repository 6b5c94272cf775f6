# drawtune: annotated engineering drawings -> fine-tuned Qwen-VL detector, metrics, report.
#
# results/
#   validated/<dataset>/{records,rejects}.jsonl, summary.json   checked records, rejects with reasons
#   splits/{train,val,test}.jsonl, <split>.coco.json, rejects.jsonl, summary.json  detection
#   splits/leakage.json, splits/classify/<dataset>/leakage.json  near-duplicates across splits
#   splits/classify/<dataset>/{train,val,test}.jsonl, ...       one per classification dataset
#   swift/<experiment|base>/<split>.jsonl, .manifest.jsonl      ms-swift data as each model
#                                                               sees it (family, size, prompt)
#   swift/<experiment|base>/<split>.tiles/                      a tiled model's view images
#   train/<experiment>/{adapter/,logging.jsonl,telemetry.jsonl,tensorboard/}  weights, curves
#   train/<experiment>/run/                                     checkpoints a rerun resumes from
#   merged/<experiment>/                                        model ready for inference
#   predictions/<experiment|base>/{val,test}.jsonl             swift infer results, logprobs
#   predictions/<experiment>/{val,test}.sheets.jsonl            a tiled model's, merged on sheets
#   train/<experiment|base>/confidence.json                     box score and threshold (val)
#   metrics/<experiment|base>/test.json, test.details.jsonl     COCO or classification metrics
#   report/{metrics,home,compare,data,provenance}.html          the report's pages: leaderboard,
#   report/models/<model>.html, report/gallery/<model>.html     its first page, per model, data
#   metrics/<experiment|base>/test.curves.json                  PR curves, score reliability
# resources/synth[-classify]/<dataset>/, resources/models/tiny-<family>/  demo data, models
# resources/normalised/<dataset>/, resources/cache/<dataset>/   converted pages, image facts
# resources/splits/[classify/<dataset>/]ledger.json            where each drawing was split
# (the paths are templates in drawtune/paths.py, the one place the rules take them from)
# logs/<rule>/..., benchmarks/<rule>/...

from drawtune.config import read_yaml

# The demo config, unless a config is given with --configfile: the user's own then replaces it
# (rather than joining its synthetic datasets and experiments); give both to layer one file
# over the other: --configfile config/config.yaml edit.yaml
if not workflow.overwrite_configfiles:
    # a YAML syntax error named with its line (Snakemake's own message names neither)
    read_yaml("config/config.yaml")

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


# Light rules run where snakemake runs (the login node with profiles/slurm); train, merge and
# predict are the cluster's jobs.
localrules:
    all,
    synth_drawings,
    synth_classify,
    build_tiny_model,
    validate_annotations,
    split_dataset,
    split_classify,
    convert_annotations,
    merge_tiles,
    calibrate_scores,
    score_detections,
    score_classification,
    report_leaderboard,
    report_compare,
    report_model,
    report_data,
    report_provenance,
    report_leakage,
    report_confidence,


rule all:
    default_target: True
    input:
        all_targets(),
