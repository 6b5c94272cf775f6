"""The speed settings of one job (``drawtune.train.gpu_plan``) from what the job has: the
model's shape, the longest sample of its data, the GPU and the topology."""

from __future__ import annotations

import logging
from pathlib import Path

from ..coords import vision_factor
from ..jsonio import load_jsonl
from . import estimate, gpu_plan

log = logging.getLogger("drawtune")
PLAN_FILE = "drawtune_plan.json"  # the training settings chosen for the job, beside the adapter


def plan_line(plan: gpu_plan.TrainPlan) -> str:
    return (
        f"micro-batch {plan.batch_size} x accumulation {plan.grad_accum}, gradient checkpointing "
        f"{'on' if plan.gradient_checkpointing else 'off'}"
    )


def plan_train(train_cfg, base, train_jsonl, manifest_jsonl, family, device, topo):
    """The job's training settings (drawtune.train.gpu_plan), from the model's shape, the longest
    sample and the GPU; logged, and kept beside the adapter as ``drawtune_plan.json``."""
    shape = _shape(base)
    tokens = train_cfg.get("max_length", 4096)
    if manifest_jsonl and Path(manifest_jsonl).is_file():
        manifest = {m["image"]: m for m in load_jsonl(manifest_jsonl)}
        rows = load_jsonl(train_jsonl)
        longest = max((estimate.sample_tokens(r, manifest, family) for r in rows), default=1)
        tokens = min(tokens, longest)
    plan = gpu_plan.plan_training(
        train_cfg,
        shape=shape,
        tokens=tokens,
        device=device,
        gpu_gib=gpu_plan.gpu_memory_gib(device),
        world_size=topo.world_size,
        cpus=gpu_plan.cpu_count(),
        liger_ok=gpu_plan.liger_available(),
    )
    log.info(
        "plan: %s, %d loader workers, liger %s, LoRA dtype %s; predicted peak %s GiB of %s GiB "
        "(%d tokens in the longest sample; %s)",
        plan_line(plan), plan.dataloader_workers, "on" if plan.liger else "off",
        plan.lora_dtype, plan.predicted_gib, plan.gpu_gib, tokens, plan.reason,
    )  # fmt: skip
    return plan


def plan_predict_batch(batch_size, model, rows, family, spec, max_new_tokens, device):
    """(batch, reason): config's integer, or for ``auto`` the largest batch whose key/value
    cache fits the GPU (drawtune.train.gpu_plan), from the model's shape and the longest prompt."""
    if batch_size != "auto":
        return int(batch_size), "batch_size from config"
    shape = _shape(model)
    f2 = vision_factor(family) ** 2
    prompt = max((_prompt_tokens(r) for r in rows[:32]), default=0)
    return gpu_plan.plan_predict(
        batch_size,
        shape=shape,
        tokens=prompt + spec.max_pixels // f2 + estimate.TEMPLATE_TOKENS,
        new_tokens=max_new_tokens,
        n_inputs=len(rows),
        device=device,
        gpu_gib=gpu_plan.gpu_memory_gib(device),
    )


def _shape(model) -> gpu_plan.Shape | None:
    """The memory model's view of a local model directory; None for a hub id or a folder
    without safetensors (the plans then take their safe choice)."""
    if not Path(str(model)).is_dir():
        return None
    try:
        return gpu_plan.model_shape(model, estimate.safetensors_parameters(Path(model)))
    except estimate.EstimateError:
        return None


def _prompt_tokens(row: dict) -> int:
    return sum(estimate.text_tokens(m["content"]) for m in row["messages"] if m["role"] == "user")
