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
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from gpu_speed import build_model, log, snakemake, steady, workflow_config  # noqa: E402
from workdir import bench_seconds, copy_workflow, gpu_name  # noqa: E402

STAGES = ("none", "zero2", "zero3")


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
    from drawtune.train.estimate import safetensors_parameters, training_tokens

    res: dict = {"device": gpu_name(), "command": " ".join(sys.argv), "runs": {}}
    model_dir = Path(a.model_dir).resolve() if a.model_dir else ROOT / "bench/runs/qwen3_vl-4b"
    if not a.model_dir:
        build_model(model_dir)
    params = safetensors_parameters(model_dir)
    wd = copy_workflow(ROOT / "bench" / "runs" / "gpu_deepspeed")
    cfg = workflow_config(model_dir, a.n, 16)
    exp = cfg["experiments"].pop("speed")
    stages = a.stages.split(",")
    for stage in stages:
        cfg["experiments"][f"ds_{stage}"] = {**exp, "deepspeed": stage}
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    first = f"ds_{stages[0]}"
    snakemake(wd, [f"results/swift/{first}/train.jsonl"], 300)
    train_jsonl = wd / f"results/swift/{first}/train.jsonl"
    manifest = next((wd / f"results/swift/{first}").glob("train*manifest*"))
    n_train, tokens = training_tokens(train_jsonl, manifest, "qwen3_vl")
    res["train_samples"], res["tokens_per_sample"] = n_train, round(tokens / n_train, 1)

    def save():
        (out / "gpu_deepspeed.json").write_text(json.dumps(res, indent=1) + "\n")

    for stage in stages:
        name = f"ds_{stage}"
        try:
            snakemake(wd, [f"results/train/{name}/logging.jsonl"], 400)
        except SystemExit as e:
            res["runs"][stage] = {"failed": str(e)}
            save()
            continue
        plan = json.loads((wd / f"results/train/{name}/adapter/drawtune_plan.json").read_text())
        per_step = plan["batch_size"] * plan["grad_accum"]
        row = steady(
            wd / f"results/train/{name}/logging.jsonl", per_step, tokens / n_train, params,
            a.warmup,
        )  # fmt: skip
        tlog = (wd / f"logs/train_adapter/{name}.log").read_text(errors="replace")
        row["swift_line"] = next((x for x in tlog.splitlines() if "running:" in x), None)
        row["launch_line"] = next((x for x in tlog.splitlines() if "launch:" in x), None)
        row["rule_s"] = round(bench_seconds(wd, f"benchmarks/train_adapter/{name}.tsv"), 1)
        res["runs"][stage] = row
        log(f"{stage}: {json.dumps({k: v for k, v in row.items() if k != 'loss'})[:600]}")
        save()
    ref = res["runs"].get("none", {}).get("loss")
    for stage, row in res["runs"].items():
        if ref and row.get("loss") and stage != "none":
            pairs = list(zip(ref, row["loss"], strict=False))
            row["max_rel_loss_diff_vs_none"] = max(abs(x - y) / abs(x) for x, y in pairs)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
