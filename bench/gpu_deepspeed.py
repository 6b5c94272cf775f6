"""DeepSpeed through the workflow's own train rule on one GPU (issue 14): the same experiment with
`deepspeed: none`, `zero2` and `zero3`, on the random Qwen3-VL-4B-shaped model and the drawings
of bench/gpu_speed.py. World size 1 still runs ms-swift's DeepSpeed config, torchrun launcher and
checkpoint code; the loss curves should agree.

    python bench/gpu_deepspeed.py --out $OUT [--n 200]

Writes gpu_deepspeed.json under --out: per run steady samples/s, peak memory, the loss curve,
the whole rule's seconds, and the `swift sft` line the rule logged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from gpu_speed import build_model, log, snakemake, steady, workflow_config  # noqa: E402
from workdir import bench_seconds, copy_workflow, gpu_name  # noqa: E402

STAGES = ("none", "zero2", "zero3")


def prepare(out: Path, name: str, n: int, experiments: dict, model_dir=None) -> tuple:
    """A workflow copy under bench/runs/<name> with ``experiments`` (name -> settings over the
    speed experiment of bench/gpu_speed.py), its data converted; returns ``(wd, res, per)``:
    the folder, the result record, and what :func:`measure` needs per run."""
    from drawtune.train.estimate import safetensors_parameters, training_tokens

    res: dict = {"device": gpu_name(), "command": " ".join(sys.argv), "runs": {}}
    model_dir = Path(model_dir).resolve() if model_dir else ROOT / "bench/runs/qwen3_vl-4b"
    if not (model_dir / "config.json").is_file():
        build_model(model_dir)
    params = safetensors_parameters(model_dir)
    wd = copy_workflow(ROOT / "bench" / "runs" / name)
    cfg = workflow_config(model_dir, n, 16)
    exp = cfg["experiments"].pop("speed")
    for run, extra in experiments.items():
        cfg["experiments"][run] = {**exp, **extra}
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    first = next(iter(experiments))
    snakemake(wd, [f"results/swift/{first}/train.jsonl"], 300)
    train_jsonl = wd / f"results/swift/{first}/train.jsonl"
    manifest = next((wd / f"results/swift/{first}").glob("train*manifest*"))
    n_train, tokens = training_tokens(train_jsonl, manifest, "qwen3_vl")
    res["train_samples"], res["tokens_per_sample"] = n_train, round(tokens / n_train, 1)
    return wd, res, (tokens / n_train, params)


def measure(
    wd: Path, name: str, per: tuple, warmup: int, timeout: float = 400, env: dict | None = None
) -> dict:
    """One experiment's train rule run: steady samples/s, peak memory and the loss curve from
    its logging.jsonl, the rule's seconds and the launch and `swift sft` lines it logged."""
    snakemake(wd, [f"results/train/{name}/logging.jsonl"], timeout, env)
    plan = json.loads((wd / f"results/train/{name}/adapter/drawtune_plan.json").read_text())
    tlog = (wd / f"logs/train_adapter/{name}.log").read_text(errors="replace")
    launch = next((x for x in tlog.splitlines() if "launch:" in x), "")
    world = int((re.search(r"world_size=(\d+)", launch) or ["", "1"])[1])
    per_step = plan["batch_size"] * plan["grad_accum"] * world  # samples an optimizer step
    tokens_per_sample, params = per
    row = steady(
        wd / f"results/train/{name}/logging.jsonl", per_step, tokens_per_sample, params, warmup
    )
    row["swift_line"] = next((x for x in tlog.splitlines() if "running:" in x), None)
    row["launch_line"] = launch or None
    row["rule_s"] = round(bench_seconds(wd, f"benchmarks/train_adapter/{name}.tsv"), 1)
    row["plan"] = {"batch_size": plan["batch_size"], "grad_accum": plan["grad_accum"]}
    row["world_size"] = world
    return row


def loss_diffs(res: dict, reference: str) -> None:
    """Each run's largest relative loss difference from ``reference``'s over the same steps."""
    ref = res["runs"].get(reference, {}).get("loss")
    for run, row in res["runs"].items():
        if ref and row.get("loss") and run != reference:
            pairs = list(zip(ref, row["loss"], strict=False))
            row[f"max_rel_loss_diff_vs_{reference}"] = max(abs(x - y) / abs(x) for x, y in pairs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/gpu_deepspeed-out"))
    ap.add_argument("--n", type=int, default=200, help="synthetic drawings (train+val+test)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--model-dir", help="an existing model instead of the 4B one (CPU smoke test)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stages = a.stages.split(",")
    runs = {f"ds_{stage}": {"deepspeed": stage} for stage in stages}
    wd, res, per = prepare(out, "gpu_deepspeed", a.n, runs, a.model_dir)

    def save():
        (out / "gpu_deepspeed.json").write_text(json.dumps(res, indent=1) + "\n")

    for stage in stages:
        try:
            row = measure(wd, f"ds_{stage}", per, a.warmup)
        except SystemExit as e:
            res["runs"][stage] = {"failed": str(e)}
            save()
            continue
        res["runs"][stage] = row
        log(f"{stage}: {json.dumps({k: v for k, v in row.items() if k != 'loss'})[:600]}")
        save()
    loss_diffs(res, "none")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
