"""The speed settings of one job (``drawtune.train.gpu_plan``) from what the job has: the
model's shape, the longest sample of its data, the GPU and the topology."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from huggingface_hub import hf_hub_download, try_to_load_from_cache

from ..coords import vision_factor
from ..jsonio import load_jsonl
from . import estimate, gpu_plan, swift_cmd, swift_plugin

log = logging.getLogger("drawtune")
PLAN_FILE = "drawtune_plan.json"  # the training settings chosen for the job, beside the adapter


def varlen_ok(device: str) -> bool:
    """The job can run the vision towers' attention as one varlen call per block: a GPU whose
    PyTorch has varlen_attn, without flash-attn (which transformers then uses the same way)."""
    return (
        device != "cpu"
        and swift_cmd.attn_impl(device) == "sdpa"
        and swift_plugin.varlen_available()
    )


def vision_varlen_for(setting: bool | str, device: str) -> bool:
    """``vision_varlen`` of config for this job: ``auto`` is :func:`varlen_ok`."""
    return gpu_plan.resolve_varlen(setting, varlen_ok(device))


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
        varlen_ok=varlen_ok(device),
    )
    log.info(
        "plan: %s, %d loader workers, liger %s, LoRA dtype %s, causal mask %s, vision cache %s "
        "GiB, vision varlen %s; predicted peak %s GiB of %s GiB (%d tokens in the longest "
        "sample; %s)",
        plan_line(plan), plan.dataloader_workers, "on" if plan.liger else "off",
        plan.lora_dtype, "on" if plan.causal_mask else "off", plan.vision_cache_gib,
        "on" if plan.vision_varlen else "off", plan.predicted_gib, plan.gpu_gib, tokens,
        plan.reason,
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


def _shape(model, cache_dir=None) -> gpu_plan.Shape | None:
    """The memory model's view of a model: a local directory's ``config.json`` and safetensors,
    or a hub id's ``config.json`` and safetensors index (``hub_file``); None when they cannot
    be read (the plans then take their safe choice)."""
    folder = Path(str(model))
    if folder.is_dir():
        try:
            return gpu_plan.model_shape(folder, estimate.safetensors_parameters(folder))
        except estimate.EstimateError:
            return None
    config = hub_file(str(model), "config.json", cache_dir)
    if config is None:
        return None
    index = hub_file(str(model), "model.safetensors.index.json", cache_dir)
    total = (
        json.loads(Path(index).read_text()).get("metadata", {}).get("total_size") if index else 0
    )
    try:
        params = total // 2 if total else estimate.model_parameters(str(model))  # bf16 bytes
    except estimate.EstimateError:
        return None
    return gpu_plan.Shape.from_config(json.loads(Path(config).read_text()), params)


def hub_file(repo_id: str, name: str, cache_dir=None) -> str | None:
    """One small file of a Hugging Face hub model (ms-swift trains hub ids with ``--use_hf``):
    from the local cache, else downloaded when the hub is reachable; None otherwise."""
    found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
    if isinstance(found, str):
        return found
    try:
        return hf_hub_download(repo_id, name, cache_dir=cache_dir)
    except Exception:  # noqa: BLE001 - offline, unknown repo, no such file: no shape, safe plan
        return None


def _prompt_tokens(row: dict) -> int:
    return sum(estimate.text_tokens(m["content"]) for m in row["messages"] if m["role"] == "user")
