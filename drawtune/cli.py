"""The ``drawtune`` command: the workflow's steps, usable outside Snakemake."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import paths
from .config import defaults, load_config
from .coords import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, FAMILIES, ResizeSpec
from .data.convert import manifest_row, swift_row
from .data.readers import box_classes, detect_format
from .data.records import ReadResult
from .data.split import unique_images
from .data.synth import write_dataset
from .data.validate import check_not_empty, check_rejects, dataset_rules, read_checked
from .errors import DrawtuneError
from .eval.confidence import DEFAULT_VARIANT, VARIANTS
from .eval.score import evaluate_answers
from .jsonio import dump_jsonl, load_jsonl, write_json
from .serve import (
    confidence_of,
    describe,
    predict_images,
    resolve,
)
from .train.device import detect_device
from .train.estimate import (
    as_json,
    estimate_experiments,
    load_reference,
    profile_machine,
    scaling_of,
    table,
)
from .train.tiny_model import TinySize, build_tiny_model
from .vertex import gcs
from .vertex.worker import worker


def _spec(a) -> ResizeSpec:
    return ResizeSpec(min_pixels=a.min_pixels, max_pixels=a.max_pixels)


def cmd_synth(a) -> int:
    coco = write_dataset(
        Path(a.out), a.n, a.seed, a.width, object_scale=a.object_scale, max_views=a.max_views
    )
    print(f"wrote {len(coco['images'])} drawings and {len(coco['annotations'])} boxes to {a.out}")
    return 0


def cmd_tiny_model(a) -> int:
    size = TinySize(hidden=a.hidden, layers=a.layers)
    s = build_tiny_model(a.family, Path(a.out), size=size, seed=a.seed)
    print(f"wrote a random {a.family} model with {s['parameters']:,} parameters to {a.out}")
    return 0


def cmd_convert(a) -> int:
    """The workflow's validation of one dataset (the rule's reader, checks and limits, and the
    split's rejection of repeated images), then its rows in one family's coordinates."""
    spec = _spec(a)
    validation = {**defaults("validation"), "pdf_dpi": a.dpi}
    if a.max_rejected_fraction is not None:
        validation["max_rejected_fraction"] = a.max_rejected_fraction
    try:
        fmt = detect_format(Path(a.input)) if a.format == "auto" else a.format
        classes = tuple(a.classes.split(",")) if a.classes else box_classes(Path(a.input), fmt)
        ds = {
            "format": fmt,
            "annotations": a.input,
            "images": a.images,
            "coords": a.coords,
            "box_units": a.box_units,
            "on_error": a.on_error,
        }
        normalised = Path(a.normalised or Path(a.out).parent / "images")
        rules = dataset_rules(ds, classes, validation, normalised_dir=normalised)
        res = read_checked(ds, rules, spec)
    except DrawtuneError as e:
        print(f"drawtune convert: {e}", file=sys.stderr)
        return 2
    records, repeated = unique_images(res.records)
    rejects = res.rejects + repeated
    for r in rejects:
        print(f"rejected {r['file']} {r['record']} [{r['field']}]: {r['reason']}", file=sys.stderr)
    if a.rejects:
        dump_jsonl(rejects, a.rejects)
    print(f"read {res.n_read}, converted {len(records)}, rejected {len(rejects)}")
    try:  # the repeated images count towards the limit too, as in the workflow's split
        checked = ReadResult(records, rejects)
        check_rejects(
            a.input, ds, checked, validation["max_rejected_fraction"], a.rejects or "above"
        )
        check_not_empty(a.input, ds, checked)
    except DrawtuneError as e:
        print(f"drawtune convert: {e}; nothing written", file=sys.stderr)
        return 1
    dump_jsonl([swift_row(r, a.family, a.prompt, spec) for r in records], a.out)
    if a.manifest:
        dump_jsonl([manifest_row(r, a.family, spec) for r in records], a.manifest)
    return 0


def cmd_score(a) -> int:
    truth = json.loads(Path(a.truth).read_text())
    s = evaluate_answers(
        load_jsonl(a.results), truth, a.family, _spec(a), variant=a.score, threshold=a.threshold
    )
    write_json(s.metrics, a.out)
    keys = ("map", "map50", "map50_unscored", "f1_50", "scores", "n_unparseable")
    print(json.dumps({k: s.metrics[k] for k in keys}))
    return 0


def cmd_gcs(a) -> int:
    try:
        if a.gcs_command == "upload-model":
            done = gcs.upload_model(a.folder, a.uri)
            print(f"{a.uri}: {len(done.sent)} files uploaded, {len(done.skipped)} unchanged")
            return 0
        problems = gcs.check_model(a.uri)
    except gcs.GcsError as e:
        print(f"drawtune gcs {a.gcs_command}: {e}", file=sys.stderr)
        return 1
    for p in problems:
        print(f"{a.uri}: missing {p}", file=sys.stderr)
    if not problems:
        print(f"{a.uri}: config, weights, tokenizer and processor files present")
    return 1 if problems else 0


def cmd_worker(a) -> int:
    return worker(json.loads(a.task))


def cmd_serve(a) -> int:
    """``swift deploy`` on a loopback port and drawtune's front on ``--host:--port``
    (drawtune.serve_process)."""
    from .serve_process import serve

    device = detect_device() if a.device == "auto" else a.device
    try:
        return serve(
            load_config(a.config),
            a.experiment,
            lora=a.lora,
            host=a.host,
            port=a.port,
            backend_port=a.backend_port,
            device=device,
        )
    except DrawtuneError as e:
        print(f"drawtune serve: {e}", file=sys.stderr)
        return 2


def cmd_predict(a) -> int:
    a.device = detect_device() if a.device == "auto" else a.device
    try:
        cfg = load_config(a.config)
        model = a.model or resolve(cfg, [a.experiment]).model  # `base`: the base model
        # the model's box score and threshold: a --model folder's own, else the experiment's
        confidence = confidence_of(a.experiment, model_dir=a.model)
        rows = predict_images(
            cfg,
            model,
            a.images,
            a.out,
            device=a.device,
            experiment=a.experiment,
            confidence=confidence,
            threshold=a.threshold,
        )
    except DrawtuneError as e:
        print(f"drawtune predict: {e}", file=sys.stderr)
        return 2
    print(describe(rows))
    print(f"pictures with the boxes drawn: {a.out}", file=sys.stderr)
    return 0


def cmd_estimate(a) -> int:
    try:
        cfg = load_config(a.config)
        machine = profile_machine(a.profile)
        gpu = a.gpu or machine.get("gpu") or "H100"
        gpus = a.gpus or machine.get("gpus") or 1
        usd = a.usd_per_hour if a.usd_per_hour is not None else machine.get("usd")
        reference = load_reference(paths.THROUGHPUT)
        rows = estimate_experiments(
            cfg, a.data, gpu=gpu, gpus=gpus, usd_per_hour=usd, reference=reference,
            params_b=a.params_b,
        )  # fmt: skip
    except (DrawtuneError, OSError) as e:
        print(f"drawtune estimate: {e}", file=sys.stderr)
        return 2
    print(as_json(rows) if a.json else table(rows))
    if gpus > 1 and not a.json:
        eff, source = scaling_of(reference)
        print(f"{gpus} GPUs at {eff:.0%} data-parallel efficiency each ({source})")
    return 0


def _resize_flags(p) -> None:
    p.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS)
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="drawtune", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate synthetic engineering drawings with COCO boxes")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument(
        "--object-scale",
        type=float,
        default=1.0,
        help="below 1: a large sheet with small objects, drawn at the size they would have on a "
        "sheet this many times as wide (e.g. --width 4000 --object-scale 0.15; for tiling)",
    )
    p.add_argument(
        "--max-views",
        type=int,
        help="keep at most this many views a sheet (1: single-view sheets, a curriculum's start)",
    )
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "tiny-model", help="build a small random Qwen-VL model with the real tokenizer"
    )
    p.add_argument("--family", choices=FAMILIES, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny_model)

    p = sub.add_parser("convert", help="annotations -> ms-swift JSONL in a family's coordinates")
    p.add_argument("--input", required=True)
    p.add_argument(
        "--format", choices=("coco", "labelme", "yolo", "voc", "swift", "auto"), default="auto"
    )
    p.add_argument("--family", choices=FAMILIES, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--images", help="folder image paths resolve against")
    p.add_argument("--coords", default="qwen3_vl", help="box convention of a swift input")
    p.add_argument("--classes", help="comma-separated class list (default: the COCO categories)")
    p.add_argument("--prompt", default="Detect every object in this engineering drawing.")
    p.add_argument("--manifest", help="also write original and resized image sizes here")
    p.add_argument("--rejects", help="write rejected records here (JSONL)")
    p.add_argument(
        "--normalised", help="folder for converted PDF/TIFF pages (default: beside --out)"
    )
    p.add_argument("--dpi", type=int, default=150, help="rasterisation of PDF pages")
    p.add_argument("--box-units", choices=("pixels", "pdf_points"), default="pixels")
    p.add_argument("--on-error", choices=("reject", "fail"), default="reject")
    p.add_argument(
        "--max-rejected-fraction",
        type=float,
        help="fail when more records are rejected (default: the config schema's validation)",
    )
    _resize_flags(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("score", help="COCO metrics of swift infer results")
    p.add_argument("--results", required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--family", choices=FAMILIES, required=True)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--score",
        choices=tuple(VARIANTS),
        default=DEFAULT_VARIANT,
        help="box score from the rows' logprobs (rows without them: every box 1.0)",
    )
    p.add_argument("--threshold", type=float, help="also report P/R/F1 of boxes scored above")
    _resize_flags(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("gcs", help="models in Cloud Storage for the Vertex AI profile")
    gsub = p.add_subparsers(dest="gcs_command", required=True)
    g = gsub.add_parser("upload-model", help="check a local model folder and upload it")
    g.add_argument("folder")
    g.add_argument("uri", help="gs://bucket/path")
    g.set_defaults(func=cmd_gcs)
    g = gsub.add_parser("check-model", help="config, weights, tokenizer, processor all there?")
    g.add_argument("uri", help="gs://bucket/path")
    g.set_defaults(func=cmd_gcs)

    p = sub.add_parser("worker", help="run one stage inside a Vertex AI job (the image's command)")
    p.add_argument("task", help="the task JSON the launcher wrote")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "serve", help="OpenAI-compatible server (swift deploy) for trained experiments"
    )
    p.add_argument("--experiment", action="append", required=True, help="repeat with --lora")
    p.add_argument("--lora", action="store_true", help="base model + one adapter per experiment")
    p.add_argument("--config", default=paths.CONFIG)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--backend-port",
        type=int,
        default=0,
        help="loopback port of the model server (swift deploy) behind the front (default: free)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("predict", help="boxes for a few drawings, drawn over copies of them")
    p.add_argument("images", nargs="+", help="PNG/JPEG/TIFF/PDF (page: file.pdf#2)")
    p.add_argument("--experiment", default="base", help="an experiment's merged model, or base")
    p.add_argument("--model", help="a model directory instead of an experiment's")
    p.add_argument(
        "--threshold",
        type=float,
        help="keep boxes scored at or above this (default: the model's, chosen on the "
        "validation split; 0 keeps every box)",
    )
    p.add_argument("--config", default=paths.CONFIG)
    p.add_argument("--out", default=paths.ADHOC)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("estimate", help="training tokens, GPU hours and cost per experiment")
    p.add_argument("--config", default=paths.CONFIG)
    p.add_argument(
        "--data", default=paths.SWIFT_ROOT, help="folder of <experiment>/train.jsonl + manifest"
    )
    p.add_argument("--profile", help="profiles/vertex or profiles/slurm: GPU, count, price")
    p.add_argument("--gpu", help="GPU kind (H100, A100, L4, ...); default from the profile")
    p.add_argument("--gpus", type=int, help="GPUs of the training job; default from profile")
    p.add_argument("--usd-per-hour", type=float, help="machine price; default from profile")
    p.add_argument("--params-b", type=float, help="model size in billions (default: counted)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate)
    return ap


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
