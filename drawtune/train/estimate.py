"""Estimates before paying: training tokens, GPU hours and cost per experiment.

Tokens are counted on each experiment's converted training data (its ``train.jsonl`` and
manifest, ``drawtune.paths.swift_data``): visual tokens from each drawing's smart-resized
size, text tokens with the real Qwen tokenizer, times the epochs. GPU hours come from a
measured reference throughput (``bench/throughput.json``, written down in BENCHMARKS.md)
scaled by the model's parameter count, the tuner (full fine-tuning does about 1.5x the work of
LoRA) and the GPU's bf16 peak relative to the GPU it was measured on. Cost is GPU-machine hours
times the hourly price kept in the profile.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import yaml

from .. import paths
from ..config import origin, settings
from ..coords import vision_factor
from ..errors import DrawtuneError
from ..jsonio import load_jsonl
from .tiny_model import tokenizer_files_dir

TEMPLATE_TOKENS = 24  # chat-template tokens around one user/assistant turn (system, roles, ends)

# Dense bf16 tensor-core peak in TFLOP/s (vendor data sheets, without sparsity).
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L4": 121.0,
    "A10G": 125.0,
    "L40S": 362.0,
    "V100": 125.0,
    "T4": 65.0,
}


# Training FLOPs per parameter and token: forward 2, backward 2 for activations, plus 2 for
# weight gradients when every weight trains (LoRA's small matrices add next to nothing).
FLOPS_PER_PARAM_TOKEN = {"full": 6.0, "lora": 4.0, "qlora": 4.0}


class EstimateError(DrawtuneError):
    pass


def gpu_kind(name: str) -> str:
    """``NVIDIA_TESLA_A100`` / ``a100`` / ``NVIDIA_H100_80GB`` -> a key of PEAK_TFLOPS."""
    up = name.upper()
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in up:
            return key
    raise EstimateError(f"unknown GPU {name!r}; known: {', '.join(PEAK_TFLOPS)}")


def safetensors_parameters(model_dir: Path) -> int:
    """Exact parameter count from the safetensors headers (no weights are read)."""
    total = 0
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise EstimateError(f"{model_dir}: no *.safetensors files to count parameters in")
    for f in files:
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, t in header.items():
            if key != "__metadata__":
                size = 1
                for d in t["shape"]:
                    size *= d
                total += size
    return total


def model_parameters(base: str) -> int:
    """Parameters of a local model directory, or read off a hub id such as ``...-4B-...``."""
    if Path(base).is_dir():
        return safetensors_parameters(Path(base))
    m = re.search(r"(\d+(?:\.\d+)?)B\b", base)
    if not m:
        raise EstimateError(f"cannot tell the size of {base!r}; pass --params-b")
    return int(float(m.group(1)) * 1e9)


@cache
def _tokenizer():
    from tokenizers import Tokenizer  # the Rust tokenizer: loaded only when tokens are counted

    return Tokenizer.from_file(str(tokenizer_files_dir() / "tokenizer.json"))


def text_tokens(text: str) -> int:
    return len(_tokenizer().encode(text.replace("<image>", "")).ids)


def sample_tokens(row: dict, manifest: dict, family: str) -> int:
    """Tokens of one training sample: text, template and visual tokens."""
    n = TEMPLATE_TOKENS + sum(text_tokens(m["content"]) for m in row["messages"])
    f = vision_factor(family)
    for img in row["images"]:
        m = manifest[img if isinstance(img, str) else img["path"]]
        n += (m["resized_width"] // f) * (m["resized_height"] // f) + 2  # + vision start/end
    return n


def training_tokens(train_jsonl, manifest_jsonl, family: str) -> tuple[int, int]:
    """(samples, tokens of one epoch) of a converted training split."""
    manifest = {m["image"]: m for m in load_jsonl(manifest_jsonl)}
    rows = load_jsonl(train_jsonl)
    return len(rows), sum(sample_tokens(r, manifest, family) for r in rows)


def load_reference(path) -> dict:
    """The measured reference throughput (``drawtune.paths.THROUGHPUT``)."""
    ref = json.loads(Path(path).read_text())
    need = ("gpu", "params", "tokens_per_sample", "samples_per_second", "tuner")
    missing = [k for k in need if k not in ref]
    if missing:
        raise EstimateError(f"{path}: missing {', '.join(missing)}")
    return ref


ASSUMED_SCALING = 0.9  # data-parallel efficiency per GPU beyond the first, until measured


def scaling_of(reference: dict) -> tuple[float, str]:
    """(efficiency, where it comes from): the reference's measured ``scaling`` (written by
    ``bench/gpu_scaling.py --adopt``), else the assumed 90 %."""
    measured = reference.get("scaling") or {}
    eff = measured.get("efficiency")
    if isinstance(eff, int | float) and not isinstance(eff, bool) and 0 < eff <= 1.2:
        return float(eff), f"measured: {measured.get('source', 'bench/throughput.json')}"
    if measured:
        raise EstimateError(f"scaling.efficiency must be a number in (0, 1.2], not {eff!r}")
    return ASSUMED_SCALING, "assumed (bench/gpu_scaling.py measures it)"


@dataclass
class Estimate:
    experiment: str
    samples: int
    epochs: float
    tokens: int
    params: int
    tuner: str
    gpu: str
    gpus: int
    gpu_hours: float
    wall_hours: float
    usd_per_hour: float | None
    usd: float | None
    scaling_efficiency: float = 1.0  # data-parallel efficiency used (1.0 on one GPU)


def estimate(
    *,
    experiment: str,
    samples: int,
    epoch_tokens: int,
    epochs: float,
    params: int,
    tuner: str,
    gpu: str,
    gpus: int = 1,
    usd_per_hour: float | None = None,
    reference: dict,
    scaling: float | None = None,
) -> Estimate:
    """GPU hours for ``epochs`` over ``epoch_tokens`` on ``gpus`` GPUs of kind ``gpu``.

    ``scaling`` is the data-parallel efficiency with more than one GPU; default: the
    reference's measured one, else the assumed 90 % (:func:`scaling_of`)."""
    if scaling is None:
        scaling = scaling_of(reference)[0]
    ref = reference
    ref_tps = ref["samples_per_second"] * ref["tokens_per_sample"]  # tokens/s on ref["gpu"]
    work = FLOPS_PER_PARAM_TOKEN[tuner] / FLOPS_PER_PARAM_TOKEN[ref["tuner"]]
    speed = PEAK_TFLOPS[gpu_kind(gpu)] / PEAK_TFLOPS[gpu_kind(ref["gpu"])]
    tps = ref_tps * speed * ref["params"] / params / work  # one GPU
    tokens = int(epoch_tokens * epochs)
    one_gpu_hours = tokens / tps / 3600
    eff = 1.0 if gpus == 1 else scaling
    wall = one_gpu_hours / (gpus * eff)
    cost = None if usd_per_hour is None else round(wall * usd_per_hour, 2)
    return Estimate(
        experiment=experiment,
        samples=samples,
        epochs=epochs,
        tokens=tokens,
        params=params,
        tuner=tuner,
        gpu=gpu_kind(gpu),
        gpus=gpus,
        gpu_hours=round(wall * gpus, 3),
        wall_hours=round(wall, 3),
        usd_per_hour=usd_per_hour,
        usd=cost,
        scaling_efficiency=eff,
    )


def table(rows: list[Estimate]) -> str:
    head = (
        f"{'experiment':<16}{'samples':>8}{'epochs':>7}{'tokens':>13}{'params':>9}"
        f"{'tuner':>6}{'GPU':>6}{'n':>3}{'GPU h':>9}{'wall h':>8}{'USD':>9}"
    )
    lines = [head]
    for r in rows:
        usd = "-" if r.usd is None else f"{r.usd:.2f}"
        lines.append(
            f"{r.experiment:<16}{r.samples:>8}{r.epochs:>7g}{r.tokens:>13,}"
            f"{r.params / 1e9:>8.2f}B{r.tuner:>6}{r.gpu:>6}{r.gpus:>3}"
            f"{r.gpu_hours:>9.3f}{r.wall_hours:>8.3f}{usd:>9}"
        )
    return "\n".join(lines)


def as_json(rows: list[Estimate]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=2)


def profile_machine(profile: str | None) -> dict:
    """GPU kind, count and hourly price of the train rule's machine in a profile (its
    ``vertex.yaml``, else its ``config.yaml``'s ``set-resources``); empty without one."""
    if not profile:
        return {}
    prof = Path(profile)
    vertex = prof / "vertex.yaml"
    if vertex.is_file():
        m = (yaml.safe_load(vertex.read_text()).get("machines") or {}).get("train_adapter", {})
        n = int(m.get("accelerator_count", 1)) * int(m.get("replica_count", 1))
        return {"gpu": m.get("accelerator_type"), "gpus": n, "usd": m.get("usd_per_hour")}
    cfg = yaml.safe_load((prof / "config.yaml").read_text()) or {}
    r = (cfg.get("set-resources") or {}).get("train_adapter", {})
    n = int(r.get("gpu", 1)) * int(r.get("nodes", 1))
    return {"gpu": r.get("gpu_model"), "gpus": n, "usd": r.get("usd_per_hour")}


def estimate_experiments(
    cfg: dict,
    data,
    *,
    gpu: str,
    gpus: int,
    usd_per_hour: float | None,
    reference: dict,
    params_b: float | None = None,
) -> list[Estimate]:
    """An :func:`estimate` for every trained experiment of a validated config, from its
    converted training data under the folder ``data`` (EstimateError when it is missing);
    ``params_b`` (billions) replaces the parameter count read from each base model."""
    rows, sizes = [], {}
    for name in sorted(cfg["experiments"]):
        s = settings(cfg, name)
        if s["tuner"] == "none":
            continue  # scored untrained: nothing to pay for but prediction
        train = paths.swift_data(name, "train", data)
        manifest = paths.swift_manifest(name, "train", data)
        if not (train.is_file() and manifest.is_file()):
            raise EstimateError(
                f"{train} is missing: run `snakemake {train} {manifest}` first (CPU only)"
            )
        samples, epoch_tokens = training_tokens(train, manifest, s["family"])
        if params_b:
            params = int(params_b * 1e9)
        else:
            # init_from: the trained model it starts from has its origin's shape
            base = settings(cfg, origin(cfg, name))["base_path"]
            if base not in sizes:
                sizes[base] = model_parameters(base)
            params = sizes[base]
        rows.append(
            estimate(
                experiment=name,
                samples=samples,
                epoch_tokens=epoch_tokens,
                epochs=s["epochs"],
                params=params,
                tuner=s["tuner"],
                gpu=gpu,
                gpus=gpus,
                usd_per_hour=usd_per_hour,
                reference=reference,
            )
        )
    return rows
