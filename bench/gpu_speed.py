"""GPU speed through the workflow's own rules against plain ms-swift, in one command (issue 12).

On the GPU machine, from the repository root (wheels from bench/gpu_wheels.sh on PYTHONPATH):

    python bench/gpu_speed.py --out $OUT

1. builds a random Qwen3-VL-4B-shaped model (4.44 B parameters, the real tokenizer) on disk;
2. copies the workflow to bench/runs/gpu_speed/ with a config that changes only the data (400
   synthetic 1024-px drawings), the base model, the image size (1,024 visual tokens at most), a
   LoRA experiment `speed` and 128 new tokens: every speed setting stays at its default (auto);
3. runs the workflow's own rules: train_adapter for `speed`, predict_split for the untrained base
   on the test split;
4. runs plain `swift sft` on the same converted data at its best setting (micro-batch 8 x
   accumulation 2 = the same 16 samples a step, Liger kernels, no checkpointing, 8 loader
   workers), and plain `swift infer` at the batch given by --baseline-infer-batch;
5. writes gpu_speed.json: steady-state samples/s (median of the logging steps after --warmup,
   from logging.jsonl), whole-rule seconds (benchmarks/), peak memory, MFU, the settings the
   workflow chose, images/s, the loss curves of both trainings, and the commands.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from workdir import bench_seconds, copy_workflow, gpu_name  # noqa: E402

MAX_PIXELS = 1024 * 1024
T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:5.0f}s] {msg}", flush=True)


def build_model(out: Path) -> None:
    import torch
    from gpu_probe import qwen3_vl_4b_config
    from transformers import AutoModelForImageTextToText, GenerationConfig

    from drawtune.train.tiny_model import build_processor, tokenizer_files_dir

    if (out / "config.json").is_file():
        return
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForImageTextToText.from_config(qwen3_vl_4b_config(), dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=151643, eos_token_id=[151645, 151643], pad_token_id=151643
    )
    model.save_pretrained(out)
    build_processor("qwen3_vl", tokenizer_files_dir()).save_pretrained(out)
    del model
    torch.cuda.empty_cache()


def workflow_config(model_dir: Path, n: int, new_tokens: int, epochs: int = 1) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["datasets"] = {
        "demo": {
            "format": "coco",
            "annotations": "resources/synth/demo/annotations.json",
            "synthetic": {"n": n, "seed": 0, "width": 1024},
        }
    }
    cfg["model"] = {
        "family": "qwen3_vl",
        "base": str(model_dir),
        "min_pixels": 3136,
        "max_pixels": MAX_PIXELS,
    }
    cfg["experiments"] = {
        "speed": {"tuner": "lora", "learning_rate": 0.0001, "epochs": epochs, "seed": 42}
    }
    cfg["predict"] = {"max_new_tokens": new_tokens}
    return cfg


def snakemake(wd: Path, targets: list[str], timeout: float, env: dict | None = None) -> float:
    cmd = [
        shutil.which("snakemake") or "snakemake", *targets, "--profile", "profiles/local",
        "--cores", "all", "--set-threads",
        *(f"{r}={os.cpu_count()}" for r in ("synth_drawings", "validate_annotations")),
    ]  # fmt: skip
    t = time.time()
    run_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run(cmd, cwd=wd, timeout=timeout, env=run_env)
    if proc.returncode:
        for f in sorted((wd / "logs").rglob("*.log")):
            print(f"==> {f}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-25:]))
        raise SystemExit(proc.returncode)
    return time.time() - t


def steady(
    logging_jsonl: Path, samples_per_step: int, tokens: float, params: int, warmup: int,
    steps_per_epoch: int | None = None,
):  # fmt: skip
    """Median samples/s and MFU of the logging steps after ``warmup``, the loss curve, peak GiB;
    with ``steps_per_epoch``, the median of each epoch too (the first steps of an epoch after
    the first are not left out: the loader is warm)."""
    from drawtune.train.telemetry import peak_tflops, steps

    rows = [json.loads(x) for x in logging_jsonl.read_text().splitlines() if x.strip()]
    tele = steps(
        rows, samples_per_step=samples_per_step, tokens_per_sample=tokens, params=params,
        tuner="lora", peak=peak_tflops(gpu_name()),
    )  # fmt: skip
    after = [r for r in tele if r["step"] > warmup and r["samples_per_s"]]
    mem = [r["peak_memory_gib"] for r in tele if r["peak_memory_gib"] is not None]
    mfu = [r["mfu"] for r in after if r["mfu"]]
    by_epoch = []
    if steps_per_epoch:
        for e in range(math.ceil(max((r["step"] for r in tele), default=0) / steps_per_epoch)):
            lo, hi = e * steps_per_epoch, (e + 1) * steps_per_epoch
            sel = [r["samples_per_s"] for r in after if lo < r["step"] <= hi]
            by_epoch.append(round(statistics.median(sel), 2) if sel else None)
    return {
        "samples_per_s_by_epoch": by_epoch,
        "samples_per_s": round(statistics.median(r["samples_per_s"] for r in after), 2),
        "mfu": round(statistics.median(mfu), 4) if mfu else None,
        "steps": max((r["step"] for r in tele), default=0),
        "steady_steps": len(after),
        "peak_mem_gib": max(mem) if mem else None,
        "loss": [r["loss"] for r in tele],
    }


def swift_env(model_dir: Path) -> dict:
    from drawtune.train.swift_cmd import swift_env as env

    return {**os.environ, **env("qwen3_vl", 3136, MAX_PIXELS, str(model_dir), "cuda")}


def run_logged(cmd: list[str], env: dict, log_path: Path, timeout: float, cwd: Path) -> float:
    """Run ``cmd`` in the workflow's folder (the converted data's image paths are relative)."""
    t = time.time()
    with open(log_path, "w") as fh:
        proc = subprocess.run(
            cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd
        )
    if proc.returncode:
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]))
        raise SystemExit(f"{cmd[:2]} failed")
    return time.time() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/gpu_speed-out"))
    ap.add_argument("--n", type=int, default=400, help="synthetic drawings (train+val+test)")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=3, help="logging steps left out of steady state")
    ap.add_argument(
        "--baseline-infer-batch", default="64", help="comma-separated swift infer batches"
    )
    ap.add_argument(
        "--parts",
        default="train,predict,baseline_train,baseline_predict",
        help="comma-separated: train predict baseline_train baseline_train_bf16 "
        "baseline_predict (baseline_train_bf16: plain swift sft with the workflow's flags)",
    )
    ap.add_argument("--epochs", type=int, default=1, help="epochs of every training run")
    ap.add_argument("--model-dir", help="an existing model instead of the 4B one (CPU smoke test)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    from drawtune.train.estimate import safetensors_parameters, training_tokens

    res: dict = {"device": gpu_name(), "command": " ".join(sys.argv),
                 "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}  # fmt: skip

    def save():
        (out / "gpu_speed.json").write_text(json.dumps(res, indent=1) + "\n")

    model_dir = Path(a.model_dir).resolve() if a.model_dir else ROOT / "bench/runs/qwen3_vl-4b"
    if not a.model_dir:
        build_model(model_dir)
    params = safetensors_parameters(model_dir)
    res["parameters"] = params
    log(f"model {params / 1e9:.2f} B at {model_dir}")

    wd = copy_workflow(ROOT / "bench" / "runs" / "gpu_speed")
    cfg = workflow_config(model_dir, a.n, a.new_tokens, a.epochs)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    # data first (CPU), so the train rule's wall time is its own
    snakemake(wd, ["results/swift/speed/train.jsonl", "results/swift/base/test.jsonl"], 300)
    train_jsonl = wd / "results/swift/speed/train.jsonl"
    manifest = wd / "results/swift/speed/train.manifest.jsonl"
    if not manifest.is_file():
        manifest = next((wd / "results/swift/speed").glob("train*manifest*"))
    n_train, tokens = training_tokens(train_jsonl, manifest, "qwen3_vl")
    res["train_samples"], res["tokens_per_sample"] = n_train, round(tokens / n_train, 1)
    res["epochs"] = a.epochs
    a.steps_per_epoch = math.ceil(n_train / 16)
    log(f"data: {n_train} train samples, {tokens / n_train:.0f} tokens a sample")

    parts = set(a.parts.split(","))
    # ---- the workflow's train rule, defaults
    if "train" in parts:
        train_rule(wd, res, tokens / n_train, params, a.warmup, a.steps_per_epoch)
        save()
    if "predict" in parts:
        predict_rule(wd, res)
        save()
    for part in ("baseline_train", "baseline_train_bf16"):
        if part in parts:
            baseline_train(wd, out, res, model_dir, train_jsonl, tokens / n_train, params, a, part)
            save()
    if "baseline_predict" in parts:
        batches = [int(b) for b in a.baseline_infer_batch.split(",")]
        chosen = res.get("workflow_predict", {}).get("batch_size")
        for batch in batches + ([chosen] if chosen and chosen not in batches else []):
            baseline_predict(wd, out, res, model_dir, a, batch)
            save()
        best = max(res["baseline_predict"].values(), key=lambda r: r["images_per_s_whole_call"])
        res["baseline_predict_images_per_s"] = best["images_per_s_whole_call"]
        save()
    short = {k: v for k, v in res.items() if not isinstance(v, dict)}
    print(json.dumps(short, indent=1))
    return 0


def train_rule(wd, res, tokens, params, warmup, steps_per_epoch=None):
    snakemake(wd, ["results/train/speed/logging.jsonl"], 600)
    plan = json.loads((wd / "results/train/speed/adapter/drawtune_plan.json").read_text())
    per_step = plan["batch_size"] * plan["grad_accum"]
    wf = steady(
        wd / "results/train/speed/logging.jsonl", per_step, tokens, params, warmup, steps_per_epoch
    )
    tlog = (wd / "logs/train_adapter/speed.log").read_text(errors="replace")
    wf["plan_line"] = next((x for x in tlog.splitlines() if "plan:" in x), None)
    res["workflow_train"] = {
        **wf,
        "rule_s": round(bench_seconds(wd, "benchmarks/train_adapter/**/*.tsv"), 1),
        "plan": plan,
    }
    res["train_samples_per_s"], res["peak_mem_gib"] = wf["samples_per_s"], wf["peak_mem_gib"]
    res["mfu"], res["settings"] = wf["mfu"], plan
    log(f"workflow train: {json.dumps({k: v for k, v in wf.items() if k != 'loss'})}")


def predict_rule(wd, res):
    snakemake(wd, ["results/predictions/base/test.jsonl"], 300)
    n_test = sum(1 for _ in (wd / "results/predictions/base/test.jsonl").open())
    rule_s = bench_seconds(wd, "benchmarks/predict_split/**/*.tsv")
    res["workflow_predict"] = {"images": n_test, "rule_s": round(rule_s, 1),
                               "images_per_s_whole_rule": round(n_test / rule_s, 2)}  # fmt: skip
    plog = (wd / "logs/predict_split/base/test.log").read_text(errors="replace")
    line = next(x for x in plog.splitlines() if "prediction batch" in x)
    res["workflow_predict"]["batch_line"] = line
    res["workflow_predict"]["batch_size"] = int(line.split("prediction batch: ")[1].split()[0])
    res["predict_images_per_s"] = res["workflow_predict"]["images_per_s_whole_rule"]
    log(f"workflow predict: {res['workflow_predict']}")


def baseline_train(wd, out, res, model_dir, train_jsonl, tokens, params, a, part):
    """Plain swift sft at its best setting, same data and global batch."""
    base_out = wd / part
    sft = [
        "swift", "sft", "--model", str(model_dir), "--model_type", "qwen3_vl",
        "--template", "qwen3_vl", "--dataset", str(train_jsonl), "--tuner_type", "lora",
        "--torch_dtype", "bfloat16", "--attn_impl", "sdpa", "--output_dir", str(base_out),
        "--add_version", "false", "--num_train_epochs", str(a.epochs), "--learning_rate", "1e-4",
        "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2",
        "--gradient_checkpointing", "false", "--use_liger_kernel", "true",
        "--dataloader_num_workers", "8", "--lora_rank", "8", "--lora_alpha", "32",
        "--target_modules", "all-linear", "--freeze_vit", "true", "--logging_steps", "1",
        "--split_dataset_ratio", "0", "--save_strategy", "no", "--max_length", "4096",
        "--seed", "42", "--data_seed", "42", "--warmup_ratio", "0.05", "--weight_decay", "0.1",
    ]  # fmt: skip
    if part == "baseline_train_bf16":
        sft += ["--lora_dtype", "bfloat16"]
    wall = run_logged(sft, swift_env(model_dir), out / f"{part}.log", 600, wd)
    bl = steady(base_out / "logging.jsonl", 16, tokens, params, a.warmup, a.steps_per_epoch)
    res[part] = {**bl, "wall_s": round(wall, 1), "command": " ".join(sft)}
    if part == "baseline_train" or "baseline_train_samples_per_s" not in res:
        res["baseline_train_samples_per_s"] = bl["samples_per_s"]
    log(f"{part}: {json.dumps({k: v for k, v in bl.items() if k != 'loss'})}")


def baseline_predict(wd, out, res, model_dir, a, batch):
    """Plain swift infer on the same test split."""
    n_test = sum(1 for _ in (wd / "results/swift/base/test.jsonl").open())
    test_jsonl = wd / "results/swift/base/test.jsonl"
    result = wd / f"baseline_infer_b{batch}.jsonl"
    infer = [
        "swift", "infer", "--model", str(model_dir), "--model_type", "qwen3_vl",
        "--template", "qwen3_vl", "--torch_dtype", "bfloat16", "--attn_impl", "sdpa",
        "--val_dataset", str(test_jsonl), "--infer_backend", "transformers",
        "--max_batch_size", str(batch), "--temperature", "0",
        "--max_new_tokens", str(a.new_tokens), "--result_path", str(result),
    ]  # fmt: skip
    wall = run_logged(infer, swift_env(model_dir), out / f"baseline_infer_b{batch}.log", 300, wd)
    row = {"images": n_test, "batch": batch, "wall_s": round(wall, 1),
           "images_per_s_whole_call": round(n_test / wall, 2), "command": " ".join(infer),
           "same_answers_as_workflow": same_answers(wd, result)}  # fmt: skip
    res.setdefault("baseline_predict", {})[f"b{batch}"] = row
    log(f"baseline infer: {row}")


def same_answers(wd: Path, result: Path) -> bool | None:
    """Whether plain swift infer answered every image exactly as the workflow's rule did."""
    ours = wd / "results/predictions/base/test.jsonl"
    if not ours.is_file():
        return None

    def answers(p):
        rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
        return sorted((json.dumps(r.get("images")), r.get("response")) for r in rows)

    return answers(ours) == answers(result)


if __name__ == "__main__":
    sys.exit(main())
