"""Learning proof: train a small Qwen-VL from scratch through the workflow, score it on
held-out drawings beside the same model untrained, and write bench/results/learning_proof.json.

Usage (on a GPU machine, from the repository root):
    python bench/learning_proof.py --family qwen3_vl [--override extra.yaml] [--curve]
    python bench/learning_proof.py --family qwen3_vl --task classify   # sheet orientation

Each family runs in its own copy of the workflow under bench/runs/<family>/ with
config/learning-proof.yaml (and, for qwen2_5_vl, config/learning-proof-qwen2_5_vl.yaml) applied
on top of config/config.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from workdir import bench_seconds, copy_workflow, gpu_name

ROOT = Path(__file__).resolve().parent.parent


# the rules that use the GPU; the learning proof runs two at once on its one GPU (see below)
GPU_RULES = ("train_adapter", "predict_split", "merge_adapter")
CPU_RULES = ("synth_drawings", "synth_classify", "validate_annotations")
# the synthetic sheets' three kinds of view, scored also as one class (drawing_evidence)
VIEW_KINDS = ["view", "section_view", "detail_view"]


def snakemake_command(
    targets: list[str], files: list[str], until: list[str] | None, cpus: int
) -> list[str]:
    """The workflow's own command for a learning-proof run (``targets[0]``: the trained
    model's scores). The CPU steps take every core; two GPU rules run at once on the one GPU
    (the 80 M model needs a fraction of it; profiles/local runs one at a time): training, first,
    beside the untrained model's predictions, then the trained model's validation and test
    predictions beside each other."""
    return [
        shutil.which("snakemake") or "snakemake",
        *targets,
        "--profile",
        "profiles/local",
        "--cores",
        "all",
        "--resources",
        "gpu=2",
        # training first: it is the longest step, and the untrained model's predictions fit
        # beside it
        "--prioritize",
        targets[0],
        "--configfile",
        "config/config.yaml",
        *files,
        "--set-threads",
        *(f"{r}={cpus}" for r in CPU_RULES),
        *(f"{r}={max(1, cpus // 2)}" for r in GPU_RULES),
        *(["--until", *until] if until else []),
    ]


def run(
    family: str,
    overrides: list[Path],
    wd: Path,
    curve: bool,
    curve_every: int = 3,
    task: str = "detect",
    until: list[str] | None = None,
    keep: bool = False,
    also: tuple[str, ...] = (),
) -> dict | None:
    if not (keep and (wd / "Snakefile").is_file()):
        copy_workflow(wd)
    files = [str(p) for p in config_files(family, task, overrides)[1:]]
    trained_name, base_name = (
        ("sheet_type", "sheet_base") if task == "classify" else ("demo", "base")
    )
    targets = [
        f"results/metrics/{trained_name}/test.json",
        f"results/metrics/{base_name}/test.json",
        *(f"results/metrics/{name}/test.json" for name in also),
    ]
    cmd = snakemake_command(targets, files, until, os.cpu_count() or 2)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=wd, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.time() - t0
    if proc.returncode:
        for log in sorted((wd / "logs").rglob("*.log")):
            print(f"==> {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        sys.exit(proc.returncode)
    if until:
        return None
    trained = json.loads((wd / targets[0]).read_text())
    untrained = json.loads((wd / targets[1]).read_text())
    rows = [json.loads(x) for x in (wd / f"results/train/{trained_name}/logging.jsonl").open()]
    steps = [r for r in rows if "loss" in r]
    n_steps = max(
        (
            int(str(r["global_step/max_steps"]).split("/")[0])
            for r in rows
            if "global_step/max_steps" in r
        ),
        default=0,
    )
    gpu_s = sum(
        bench_seconds(wd, f"benchmarks/{r}/**/*.tsv")
        for r in ("train_adapter", "merge_adapter", "predict_split")
    )
    common = {
        "gpu_minutes": round(gpu_s / 60, 2),
        "wall_minutes": round(wall / 60, 2),
        "steps": n_steps,
        "final_loss": steps[-1]["loss"] if steps else None,
        "device": gpu_name(),
    }
    if task == "classify":
        keys = ("accuracy", "macro_f1", "invalid_rate")
        return {
            **{k: trained[k] for k in keys},
            **{f"untrained_{k}": untrained[k] for k in keys},
            "n_test_images": trained["n"],
            "confusion": trained["confusion"],
            **common,
        }
    result = {
        "map50": trained["map50"],
        "map": trained["map"],
        "parse_rate": round(1 - trained["n_unparseable"] / trained["n_images"], 4),
        "untrained_map50": untrained["map50"],
        "untrained_parse_rate": round(1 - untrained["n_unparseable"] / untrained["n_images"], 4),
        "n_test_images": trained["n_images"],
        "gpu_minutes": round(gpu_s / 60, 2),
        "wall_minutes": round(wall / 60, 2),
        "steps": n_steps,
        "final_loss": steps[-1]["loss"] if steps else None,
        "device": gpu_name(),
        "per_class_ap50": ap50_by_class(trained),
        **drawing_evidence(wd, trained_name),
    }
    for name in also:
        m = json.loads((wd / f"results/metrics/{name}/test.json").read_text())
        result.setdefault("also", {})[name] = {
            "map50": m["map50"],
            "per_class_ap50": ap50_by_class(m),
            **drawing_evidence(wd, name),
        }
    if curve:
        result["curve"] = [
            {
                "step": 0,
                "map50": result["untrained_map50"],
                "parse_rate": result["untrained_parse_rate"],
            }
        ]
        cfg = layered_config(config_files(family, task, overrides))
        result["curve"] += map50_curve(wd, family, curve_every, cfg)
        result["curve"].append(
            {
                "step": n_steps,
                "map50": result["map50"],
                "parse_rate": result["parse_rate"],
                "per_class_ap50": result["per_class_ap50"],
                "count_gain": count_gains(result["image_use"]),
            }
        )
    return result


def config_files(family: str, task: str, overrides: list[Path]) -> list[Path]:
    """The config files of one run, in the order Snakemake layers them: config/config.yaml,
    config/learning-proof.yaml, the family's and the task's files, then the overrides."""
    files = [ROOT / "config" / "config.yaml", ROOT / "config" / "learning-proof.yaml"]
    if family == "qwen2_5_vl":
        files.append(ROOT / "config" / "learning-proof-qwen2_5_vl.yaml")
    if task == "classify":
        files.append(ROOT / "config" / "learning-proof-classify.yaml")
    return files + [p.resolve() for p in overrides]


def layered_config(files: list[Path]) -> dict:
    """The config Snakemake builds from these files, each updating the one before (as
    ``--configfile a b c`` does), before the schema's defaults are filled in."""
    sys.path.insert(0, str(ROOT))
    from snakemake.utils import update_config

    from drawtune.config import read_yaml

    cfg: dict = {}
    for f in files:
        update_config(cfg, read_yaml(f))
    return cfg


def curve_predict_settings(cfg: dict) -> dict:
    """What the curve's checkpoints are predicted with: the trained experiment's image size and
    the ``predict`` block of the run's layered config, as the workflow's predict_split has them
    (``auto`` batches, which need the GPU plan, are 64 here)."""
    sys.path.insert(0, str(ROOT))
    from drawtune.config import completed, settings

    cfg = completed(cfg)
    s = settings(cfg, "demo")
    batch = cfg["predict"]["batch_size"]
    return {
        "min_pixels": s["min_pixels"],
        "max_pixels": s["max_pixels"],
        "batch_size": batch if isinstance(batch, int) else 64,
        "max_new_tokens": cfg["predict"]["max_new_tokens"],
    }


def ap50_by_class(metrics: dict) -> dict:
    """AP50 per class of one test.json (or score()'s metrics)."""
    return {k: v["ap50"] for k, v in metrics["per_class"].items()}


def count_gains(use: dict) -> dict:
    """Each class's count gain over the constant answer, from drawtune.eval.image_use."""
    return {k: v["gain"] for k, v in use["per_class"].items()}


def drawing_evidence(wd: Path, model: str) -> dict:
    """What one scored model's test boxes say beyond its AP, from one read of its matched
    boxes and the test truth: ``image_use`` (drawtune.eval.image_use: do its counts follow the
    drawings?) and ``confusion`` (drawtune.eval.confusion's class-agnostic matrix at IoU 0.5:
    rows the true class and ``false alarm``, columns the predicted class and ``missed``; it
    shows whether a class scored 0 is missed or written as another class) and
    ``grouped_ap50`` (drawtune.eval.metrics.grouped_ap50 of the three kinds of view as one
    class, with the boxes' scores: how well views are found whichever kind they are called)."""
    sys.path.insert(0, str(ROOT))
    from drawtune.eval.confusion import match_detections
    from drawtune.eval.image_use import image_use
    from drawtune.eval.metrics import grouped_ap50
    from drawtune.jsonio import load_jsonl

    truth = json.loads((wd / "results/splits/test.coco.json").read_text())
    details = load_jsonl(wd / f"results/metrics/{model}/test.details.jsonl")
    image_id = {i["file_name"]: i["id"] for i in truth["images"]}
    predictions = [
        {"image_id": image_id[d["image"]], **b} for d in details for b in d.get("boxes") or []
    ]
    return {
        "image_use": image_use(details, truth),
        "confusion": match_detections(truth, details).confusion,
        "grouped_ap50": grouped_ap50(truth, predictions, {"view kinds": VIEW_KINDS}),
    }


def map50_curve(wd: Path, family: str, every: int, cfg: dict) -> list[dict]:
    """mAP50 of every kept checkpoint on the test split (same predict and score code, at the
    image size and prediction settings of the run's layered config ``cfg``)."""
    sys.path.insert(0, str(ROOT))
    from drawtune.coords import ResizeSpec
    from drawtune.eval.image_use import image_use
    from drawtune.eval.score import score
    from drawtune.jsonio import load_jsonl
    from drawtune.train.device import detect_device
    from drawtune.train.stages import Predict

    ps = curve_predict_settings(cfg)
    spec = ResizeSpec(ps["min_pixels"], ps["max_pixels"])
    truth = json.loads((wd / "results/splits/test.coco.json").read_text())
    out = []
    os.chdir(wd)  # image paths in the JSONL are relative to the workflow's folder
    ckpts = sorted(
        (wd / "results/train/demo/run").glob("checkpoint-*"),
        key=lambda p: int(p.name.split("-")[1]),
    )
    for ck in ckpts[every - 1 : -1 : every]:  # the last checkpoint is the scored model
        res = wd / f"results/curve/{ck.name}.jsonl"
        res.parent.mkdir(parents=True, exist_ok=True)
        Predict(
            family=family,
            model=str(ck),
            dataset=str(wd / "results/swift/demo/test.jsonl"),
            spec=spec,
            batch_size=ps["batch_size"],
            max_new_tokens=ps["max_new_tokens"],
            result_out=str(res),
            log_path=str(res.with_suffix(".log")),
        ).run(device=detect_device())
        metrics, details = score(load_jsonl(res), truth, family, spec)
        out.append(
            {
                "step": int(ck.name.split("-")[1]),
                "map50": metrics["map50"],
                "parse_rate": round(1 - metrics["n_unparseable"] / metrics["n_images"], 4),
                "per_class_ap50": ap50_by_class(metrics),
                "count_gain": count_gains(image_use(details, truth)),
            }
        )
        print(out[-1], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--family", choices=("qwen3_vl", "qwen2_5_vl"), required=True)
    ap.add_argument("--override", type=Path, action="append", default=[])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--curve", action="store_true", help="also score kept checkpoints")
    ap.add_argument("--curve-every", type=int, default=3, help="score every n-th epoch checkpoint")
    ap.add_argument("--task", choices=("detect", "classify"), default="detect")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/learning_proof.json")
    ap.add_argument(
        "--until",
        nargs="+",
        help="only run these rules and what they need (e.g. the CPU steps: convert_annotations "
        "build_tiny_model), then stop; a later call with --keep-workdir goes on from there",
    )
    ap.add_argument("--keep-workdir", action="store_true", help="go on in the existing --workdir")
    ap.add_argument(
        "--score-also",
        nargs="+",
        default=[],
        help="also score these experiments (e.g. a curriculum's warmup) on the test split",
    )
    ap.add_argument("--key", help="the result's name in --out (default: the family)")
    a = ap.parse_args()
    key = a.key or (a.family if a.task == "detect" else f"{a.family}-classify")
    # absolute: map50_curve changes into the folder before it looks for checkpoints
    wd = (a.workdir or ROOT / "bench/runs" / key).resolve()
    result = run(
        a.family,
        a.override,
        wd,
        a.curve,
        a.curve_every,
        a.task,
        a.until,
        a.keep_workdir,
        tuple(a.score_also),
    )
    if result is None:
        return
    print(json.dumps(result, indent=2))
    allres = json.loads(a.out.read_text()) if a.out.exists() else {}
    allres[key] = result
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(allres, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
