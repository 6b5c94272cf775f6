"""Settings that adapt to the GPU: micro-batch, accumulation, gradient checkpointing, loader
workers, Liger kernels and LoRA precision for training; the batch for prediction.

A user who leaves these at ``auto`` gets the fast path on the GPU the job lands on, and a setting
that fits its memory: the micro-batch is the largest power of two whose predicted peak memory
fits in the card (accumulation makes up the configured ``global_batch``, so the optimisation is
the same on an L4 and an H200), gradient checkpointing is used only when a micro-batch of more
than one sample does not fit without it, and when ms-swift still runs out of memory the run is
retried with half the micro-batch (``fallback``). Integers and booleans in config override each
choice.

The memory model counts bf16 weights, optimizer state, and activation bytes per token per layer
and hidden unit, with coefficients measured on one H200 with a Qwen3-VL-4B-shaped model
(BENCHMARKS.md, "GPU speed"). Pure functions over plain values: unit-tested without a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

GIB = 2**30
# Activation bytes kept for backward, per token, per decoder layer and hidden unit, LoRA with a
# frozen vision tower, from the allocated peaks of the H200 probe (bench/results/gpu_probe.json,
# dropout 0.05, no Liger): float32 adapters 117.4 GiB at micro-batch 8 of 1,347 tokens; bf16
# adapters (no float32 copy of each adapter's input) 86.4 GiB with Liger, i.e. about 85 bytes,
# taken as 88. Without checkpointing every layer keeps its activations; with it only the layer
# inputs (2 bytes a unit) plus one layer being redone.
ACT_NO_CKPT = {"float32": 115.0, "bfloat16": 88.0}  # by LoRA adapter dtype
ACT_CKPT_LAYER_INPUT = 2.0
# Loss over the answer tokens without Liger's fused linear cross-entropy: logits in bf16, their
# float32 copy and its gradient, per answer token and vocabulary entry.
LOGIT_BYTES = 10.0
ANSWER_FRACTION = 0.25  # answer tokens as a fraction of a sample (drawings: ~1,024 visual tokens)
RESERVE_GIB = 2.0  # CUDA context, allocator fragmentation, the vision tower's transient work
USABLE = 0.90  # of the card's memory
PREDICT_EXTRA_GIB = 2.0
MAX_MICRO = 64
MIN_CKPT_MICRO = 4  # see plan_training: checkpointing beats a micro-batch of 1
MAX_PREDICT_BATCH = 256
MAX_VISION_CACHE_GIB = 32.0  # the frozen vision tower's outputs (~21 MB an image of 1,024 tokens)


@dataclass(frozen=True)
class Shape:
    """What the memory model needs of a model: from its ``config.json``."""

    params: int
    layers: int
    hidden: int
    vocab: int
    kv_dim: int  # key/value width per layer (kv heads x head dim)

    @classmethod
    def from_config(cls, config: dict, params: int) -> Shape:
        text = config.get("text_config") or config
        heads = text.get("num_attention_heads", 1)
        head_dim = text.get("head_dim") or text["hidden_size"] // heads
        return cls(
            params=params,
            layers=text["num_hidden_layers"],
            hidden=text["hidden_size"],
            vocab=text.get("vocab_size", config.get("vocab_size", 151936)),
            kv_dim=text.get("num_key_value_heads", heads) * head_dim,
        )


def model_shape(model_dir, params: int) -> Shape | None:
    """The shape of a local model directory; None for a hub id not on disk (plans then fall back
    to the safe choice)."""
    cfg = Path(str(model_dir)) / "config.json"
    if not cfg.is_file():
        return None
    return Shape.from_config(json.loads(cfg.read_text()), params)


@dataclass(frozen=True)
class TrainPlan:
    batch_size: int
    grad_accum: int
    gradient_checkpointing: bool
    dataloader_workers: int
    liger: bool
    lora_dtype: str | None
    causal_mask: bool = False  # drop the right-padding mask (drawtune.train.swift_plugin)
    vision_cache_gib: float = 0.0  # frozen vision tower's outputs kept on the GPU, 0: off
    vision_varlen: bool = False  # the vision tower's attention as one varlen call per block
    predicted_gib: float | None = None
    gpu_gib: float | None = None
    reason: str = ""

    def apply(self, train_cfg: dict) -> dict:
        """``train_cfg`` with every ``auto`` replaced by this plan's value."""
        t = dict(train_cfg)
        t.update(
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            gradient_checkpointing=self.gradient_checkpointing,
            dataloader_workers=self.dataloader_workers,
            liger=self.liger,
            causal_mask=self.causal_mask,
            vision_cache_gib=self.vision_cache_gib,
            vision_varlen=self.vision_varlen,
        )
        if "lora" in t:
            t["lora"] = {**t["lora"], "dtype": self.lora_dtype}
        return t

    def as_dict(self) -> dict:
        return asdict(self)


def train_peak_gib(
    shape: Shape,
    micro: int,
    tokens: int,
    *,
    ckpt: bool,
    tuner: str = "lora",
    lora_dtype: str = "bfloat16",
    liger: bool = False,
) -> float:
    """Predicted peak GPU memory of one training step (GiB)."""
    per_param = {"full": 12.0, "lora": 2.0, "qlora": 0.6}[tuner]  # weights (+grads, Adam)
    static = shape.params * per_param
    per_layer = shape.hidden * micro * tokens
    coef = ACT_NO_CKPT.get(lora_dtype, ACT_NO_CKPT["float32"])
    if ckpt:
        act = shape.layers * per_layer * ACT_CKPT_LAYER_INPUT + 3 * coef * per_layer
    else:
        act = shape.layers * per_layer * coef
    if tuner == "full":
        act *= 1.2  # weight gradients of every layer are alive together with the activations
    head = 0.0 if liger else micro * tokens * ANSWER_FRACTION * shape.vocab * LOGIT_BYTES
    return (static + act + head) / GIB + RESERVE_GIB


def liger_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("liger_kernel", "triton"))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _auto(value) -> bool:
    return value is None or value == "auto"


def resolve_varlen(setting, ok: bool) -> bool:
    """``vision_varlen`` of config: ``auto`` is ``ok`` (the job can run the varlen call)."""
    return ok if _auto(setting) else bool(setting)


def plan_training(
    train_cfg: dict,
    *,
    shape: Shape | None,
    tokens: int,
    device: str,
    gpu_gib: float | None,
    world_size: int = 1,
    cpus: int = 1,
    liger_ok: bool = False,
    varlen_ok: bool = False,
) -> TrainPlan:
    """Resolve every ``auto`` of an experiment's training block for this job. ``varlen_ok``:
    the job's GPU can run PyTorch's varlen_attn and flash-attn is not there to do it."""
    t = train_cfg
    gpu = device != "cpu"
    tuner = t.get("tuner", "lora")
    lora = t.get("lora") or {}
    dtype = lora.get("dtype", "auto")
    lora_dtype = ("bfloat16" if gpu else "float32") if _auto(dtype) else dtype
    if tuner not in ("lora", "qlora"):
        lora_dtype = None
    liger = (gpu and liger_ok) if _auto(t.get("liger")) else bool(t["liger"])
    workers = t.get("dataloader_workers", "auto")
    if _auto(workers):
        workers = min(8, max(cpus - 1, 0)) if gpu else 0
    world = max(1, world_size)
    global_batch = int(t.get("global_batch") or 16)
    per_device = max(1, math.ceil(global_batch / world))
    ckpt_cfg = t.get("gradient_checkpointing", "auto")
    micro_cfg = t.get("batch_size", "auto")
    reasons = []

    def peak(micro, ckpt):
        if shape is None or not gpu:
            return None
        return train_peak_gib(
            shape, micro, tokens, ckpt=ckpt, tuner=tuner, lora_dtype=lora_dtype or "float32",
            liger=liger,
        )  # fmt: skip

    budget = gpu_gib * USABLE if gpu_gib else None
    if not _auto(micro_cfg):
        micro = int(micro_cfg)
        ckpt = ckpt_cfg if not _auto(ckpt_cfg) else not _fits(peak(micro, False), budget)
        reasons.append("batch_size from config")
    elif not gpu:
        micro, ckpt = min(per_device, 2), (False if _auto(ckpt_cfg) else ckpt_cfg)
        reasons.append("CPU: micro-batch 2 at most")
    elif shape is None or budget is None:
        micro, ckpt = 1, (True if _auto(ckpt_cfg) else ckpt_cfg)
        reasons.append("model shape or GPU memory unknown: the safe choice")
    else:
        choices = [False, True] if _auto(ckpt_cfg) else [bool(ckpt_cfg)]
        best = {}
        for c in choices:
            fit = [m for m in _powers(min(per_device, MAX_MICRO)) if _fits(peak(m, c), budget)]
            if fit:
                best[c] = fit[-1]
        micro, ckpt = 1, choices[-1]
        if False in best:
            micro, ckpt = best[False], False
        elif True in best:
            micro, ckpt = best[True], True
        # Batch-1 steps ran 3x slower per sample than batch 8 on the H200 (1.52 against 4.95
        # samples/s, both checkpointed) while checkpointing costs 25 %: when only one sample fits
        # without it, checkpointing with a micro-batch of 4 or more is the faster choice.
        if micro == 1 and not ckpt and best.get(True, 0) >= MIN_CKPT_MICRO:
            micro, ckpt = best[True], True
        reasons.append(f"largest micro-batch that fits {budget:.0f} GiB")
    accum = t.get("grad_accum", "auto")
    accum = max(1, math.ceil(per_device / micro)) if _auto(accum) else int(accum)
    p = peak(micro, ckpt)
    causal = t.get("causal_mask", "auto")
    causal = True if _auto(causal) else bool(causal)
    varlen = resolve_varlen(t.get("vision_varlen", "auto"), gpu and varlen_ok)
    return TrainPlan(
        batch_size=micro,
        grad_accum=accum,
        gradient_checkpointing=bool(ckpt),
        dataloader_workers=int(workers),
        liger=liger,
        lora_dtype=lora_dtype,
        causal_mask=causal,
        vision_cache_gib=vision_cache_gib(t, gpu, budget, p),
        vision_varlen=varlen,
        predicted_gib=round(p, 1) if p is not None else None,
        gpu_gib=round(gpu_gib, 1) if gpu_gib else None,
        reason="; ".join(reasons),
    )


def vision_cache_gib(t: dict, gpu: bool, budget: float | None, peak: float | None) -> float:
    """GiB for the frozen vision tower's outputs: what the plan leaves free of the GPU's usable
    memory, at most MAX_VISION_CACHE_GIB (``auto``: on a GPU when the tower is frozen and the
    images are seen more than once); a number in config is the size; false: off."""
    value = t.get("vision_cache", "auto")
    if value is False or not t.get("freeze_vit", True):
        return 0.0
    if not isinstance(value, bool) and not _auto(value):
        return float(value)
    if _auto(value) and (not gpu or int(t.get("epochs", 1)) < 2):
        return 0.0
    if budget is None or peak is None:
        return MAX_VISION_CACHE_GIB if value is True else 0.0
    return round(max(0.0, min(MAX_VISION_CACHE_GIB, budget - peak)), 1)


def fallback(plan: TrainPlan, train_cfg: dict) -> TrainPlan | None:
    """The next, smaller setting after an out-of-memory failure; None when nothing is left that
    config leaves to ``auto``. Half the micro-batch (twice the accumulation, same global batch),
    then gradient checkpointing."""
    if _auto(train_cfg.get("batch_size", "auto")) and plan.batch_size > 1:
        return replace(
            plan,
            batch_size=plan.batch_size // 2,
            grad_accum=plan.grad_accum * 2,
            predicted_gib=None,
            reason=plan.reason + f"; out of memory at micro-batch {plan.batch_size}",
        )
    ckpt_auto = _auto(train_cfg.get("gradient_checkpointing", "auto"))
    if ckpt_auto and not plan.gradient_checkpointing:
        return replace(
            plan,
            gradient_checkpointing=True,
            predicted_gib=None,
            reason=plan.reason + "; out of memory without gradient checkpointing",
        )
    return None


def predict_peak_gib(shape: Shape, batch: int, tokens: int, new_tokens: int) -> float:
    """Weights, the key/value cache of the whole batch, and the prefill's transient work."""
    kv = shape.layers * 2 * shape.kv_dim * 2 * (tokens + new_tokens)
    prefill = 30 * shape.hidden * tokens  # one layer's transient work at a time, bf16
    # + the vision tower's and the first step's transient work over the whole batch
    return (shape.params * 2 + batch * (kv + prefill)) / GIB + RESERVE_GIB + PREDICT_EXTRA_GIB


def plan_predict(
    batch_size,
    *,
    shape: Shape | None,
    tokens: int,
    new_tokens: int,
    n_inputs: int,
    device: str,
    gpu_gib: float | None,
) -> tuple[int, str]:
    """The prediction batch and why: config's integer, or the largest that fits (``auto``)."""
    if not _auto(batch_size):
        return int(batch_size), "batch_size from config"
    if device == "cpu":
        return min(4, max(1, n_inputs)), "CPU: 4 at most"
    if shape is None or not gpu_gib:
        return min(8, max(1, n_inputs)), "model shape or GPU memory unknown: 8 at most"
    budget = gpu_gib * USABLE
    best = 1
    for b in _powers(MAX_PREDICT_BATCH):
        if predict_peak_gib(shape, b, tokens, new_tokens) <= budget:
            best = b
    return min(best, max(1, n_inputs)), f"largest batch that fits {budget:.0f} GiB"


def _powers(limit: int) -> list[int]:
    out, m = [], 1
    while m <= limit:
        out.append(m)
        m *= 2
    return out


def _fits(peak: float | None, budget: float | None) -> bool:
    return peak is not None and budget is not None and peak <= budget


def gpu_memory_gib(device: str) -> float | None:
    """Total memory of the first visible GPU, or None on CPU."""
    if device == "cpu":
        return None
    import torch

    return torch.cuda.get_device_properties(0).total_memory / GIB


def is_out_of_memory(log_text: str) -> bool:
    return "CUDA out of memory" in log_text or "OutOfMemoryError" in log_text
