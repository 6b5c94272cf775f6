"""ms-swift command lines and environment, built from narrow settings.

Everything ms-swift would otherwise decide by itself (timestamped output folders, hub checks,
default accumulation and workers, coordinate rewriting) is set explicitly here, so the same
settings always give the same command. Pure functions: the rules run what these return.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .. import paths
from ..coords import vision_factor
from . import swift_plugin
from .tracking import report_to_args, trackers

TEMPLATES = {"qwen3_vl": "qwen3_vl", "qwen2_5_vl": "qwen2_5_vl"}


def is_local_model(base: str) -> bool:
    """A local directory (or a path-looking string); otherwise a hub id such as
    ``Qwen/Qwen3-VL-4B-Instruct``."""
    return base.startswith(("/", "./", "../", *paths.TREES)) or Path(base).is_dir()


def swift_env(
    family: str, min_pixels: int, max_pixels: int, base: str, device: str = "cpu"
) -> dict:
    """Environment for every swift call: image-size bounds as whole visual-token counts (what
    ms-swift and qwen-vl-utils use), Qwen-VL bbox handling, and offline hub for local models."""
    f2 = vision_factor(family) ** 2
    env = {
        "QWENVL_BBOX_FORMAT": "new",
        "IMAGE_MAX_TOKEN_NUM": str(max_pixels // f2),
        "IMAGE_MIN_TOKEN_NUM": str(max(1, min_pixels // f2)),
        "MAX_PIXELS": str((max_pixels // f2) * f2),
        "MIN_PIXELS": str(max(1, min_pixels // f2) * f2),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONHASHSEED": "0",
    }
    if is_local_model(base):
        env["HF_HUB_OFFLINE"] = "1"
        env["HF_DATASETS_OFFLINE"] = "1"
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def model_args(family: str, base: str, device: str) -> list[str]:
    """The model, its type and template, dtype and attention for any swift command."""
    args = ["--model", base, "--model_type", family, "--template", TEMPLATES[family]]
    if not is_local_model(base):
        args += ["--use_hf", "true"]
    if device == "cpu":
        args += ["--torch_dtype", "float32", "--attn_impl", "sdpa"]
    else:
        args += ["--torch_dtype", "bfloat16", "--attn_impl", attn_impl(device)]
    return args


def attn_impl(device: str) -> str:
    """FlashAttention when its package is importable on a GPU, else PyTorch SDPA."""
    if device != "cpu" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attn"
    return "sdpa"


# settings that may be "auto" in config and are resolved for the job by drawtune.train.gpu_plan
_PLANNED = ("batch_size", "grad_accum", "gradient_checkpointing", "dataloader_workers", "liger")


def sft_command(
    *,
    family: str,
    base: str,
    train: str,
    val: str | None,
    output_dir: str,
    train_cfg: dict,
    device: str = "cpu",
    deepspeed: str | None = None,
) -> list[str]:
    """``swift sft`` for one experiment. ``train_cfg`` is the experiment's training block;
    ``deepspeed`` is ms-swift's preset name (``zero2``, ``zero3``, ``zero3_offload``) for a run
    over several GPUs (see ``drawtune.train.launch.deepspeed_stage``)."""
    t = train_cfg
    unresolved = [k for k in _PLANNED if t.get(k) == "auto"]
    if unresolved:
        raise ValueError(f"resolve {', '.join(unresolved)} first (drawtune.train.gpu_plan)")
    cmd = ["swift", "sft", *model_args(family, base, device)]
    cmd += [
        "--check_model",
        "false",
        "--dataset",
        train,
        "--output_dir",
        output_dir,
        "--add_version",
        "false",
        "--tuner_type",
        t["tuner"] if t["tuner"] != "qlora" else "lora",
        "--num_train_epochs",
        str(t["epochs"]),
        "--learning_rate",
        str(t["learning_rate"]),
        "--per_device_train_batch_size",
        str(t["batch_size"]),
        "--per_device_eval_batch_size",
        str(t["batch_size"]),
        "--gradient_accumulation_steps",
        str(t["grad_accum"]),
        "--max_length",
        str(t["max_length"]),
        "--warmup_ratio",
        str(t["warmup_ratio"]),
        "--weight_decay",
        str(t["weight_decay"]),
        "--freeze_vit",
        str(t["freeze_vit"]).lower(),
        "--freeze_aligner",
        str(t["freeze_aligner"]).lower(),
        "--gradient_checkpointing",
        str(t["gradient_checkpointing"]).lower(),
        "--seed",
        str(t["seed"]),
        "--data_seed",
        str(t["seed"]),
        "--dataloader_num_workers",
        str(t["dataloader_workers"]),
        "--dataset_num_proc",
        "1",
        "--logging_steps",
        str(t["logging_steps"]),
        *_save_args(t.get("save_steps")),
        "--save_total_limit",
        "2",
        # TensorBoard unless the experiment's report_to says otherwise (drawtune.train.tracking)
        *report_to_args(trackers(t), Path(output_dir).parent.name),
        "--split_dataset_ratio",
        "0",
    ]
    if val:
        cmd += ["--val_dataset", val, "--eval_strategy", "epoch"]
    else:
        cmd += ["--eval_strategy", "no"]
    if t["tuner"] in ("lora", "qlora"):
        lora = t["lora"]
        cmd += [
            "--lora_rank",
            str(lora["rank"]),
            "--lora_alpha",
            str(lora["alpha"]),
            "--lora_dropout",
            str(lora["dropout"]),
            "--target_modules",
            *str(lora["target_modules"]).split(),
        ]
        if lora.get("dtype") not in (None, "auto"):
            cmd += ["--lora_dtype", lora["dtype"]]
    if t.get("liger"):
        cmd += ["--use_liger_kernel", "true"]
    if deepspeed:
        cmd += ["--deepspeed", deepspeed]
    if t.get("causal_mask") or t.get("vision_cache_gib") or t.get("vision_varlen"):
        cmd += ["--external_plugins", swift_plugin.__file__]
    if t["tuner"] == "qlora":
        cmd += ["--quant_method", "bnb", "--quant_bits", "4", "--bnb_4bit_quant_type", "nf4"]
    for key, value in sorted((t.get("extra_args") or {}).items()):
        cmd += [f"--{key}", str(value)]
    return cmd


def _save_args(save_steps: int | None) -> list[str]:
    """A checkpoint every ``save_steps`` optimizer steps (what a preempted run resumes from), or
    one per epoch."""
    if save_steps:
        return ["--save_strategy", "steps", "--save_steps", str(save_steps)]
    return ["--save_strategy", "epoch"]


def resume_args(checkpoint: str | None) -> list[str]:
    """Continue an interrupted run: weights, optimizer, scheduler, RNG and step counter come
    from the checkpoint (Hugging Face Trainer's resume; data already seen is skipped)."""
    return ["--resume_from_checkpoint", checkpoint] if checkpoint else []


def export_command(*, family: str, base: str, adapter: str, output_dir: str, device: str = "cpu"):
    """``swift export`` merging a LoRA adapter into its base model."""
    return [
        "swift",
        "export",
        *model_args(family, base, device),
        "--adapters",
        adapter,
        "--merge_lora",
        "true",
        "--output_dir",
        output_dir,
    ]


def infer_command(
    *,
    family: str,
    model: str,
    dataset: str,
    result_path: str,
    batch_size: int,
    max_new_tokens: int,
    device: str = "cpu",
    logprobs: bool = False,
    top_logprobs: int = 0,
    vision_varlen: bool = False,
) -> list[str]:
    """Greedy ``swift infer`` with the transformers backend over one JSONL split. With
    ``logprobs`` every answer's tokens come back with their log-probabilities and the
    ``top_logprobs`` most likely alternatives at each place (the result rows' ``logprobs``
    field), which score the boxes (drawtune.eval.confidence)."""
    cmd = [
        "swift",
        "infer",
        *model_args(family, model, device),
        "--val_dataset",
        dataset,
        "--infer_backend",
        "transformers",
        "--max_batch_size",
        str(batch_size),
        "--temperature",
        "0",
        "--max_new_tokens",
        str(max_new_tokens),
        "--result_path",
        result_path,
        "--seed",
        "0",
    ]
    if logprobs:
        cmd += ["--logprobs", "true"]
        if top_logprobs:
            cmd += ["--top_logprobs", str(top_logprobs)]
    if vision_varlen:  # the plugin's DRAWTUNE_VISION_VARLEN, set in the environment by the caller
        cmd += ["--external_plugins", swift_plugin.__file__]
    return cmd


def infer_job(**kw) -> tuple[list[str], dict]:
    """:func:`infer_command` with the environment its plugin reads: the one place that turns
    the varlen call on for ``swift infer`` (the flag that loads the plugin and the variable
    that switches it on always go together)."""
    return infer_command(**kw), swift_plugin.plugin_env(False, 0, kw.get("vision_varlen", False))


def child_env(extra: dict) -> dict:
    env = dict(os.environ)
    env.update(extra)
    return env
