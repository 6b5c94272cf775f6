"""Why the learning proof's qwen2_5_vl run trains at a third of qwen3_vl's speed (issue 21):
the vision tower of each tiny model alone, forward and backward, on the GPU.

    python bench/gpu_vit_timing.py --out $OUT [--images 32] [--iters 10]

Three towers, bf16, PyTorch SDPA as the workflow trains without flash-attn, each with the tower
size, sheet size and image bounds of its learning-proof run (read from the same layered config:
RUNS below; lp-vision.yaml's 8 blocks of 384, 650 and 640 px wide sheets):
- qwen2_5_vl as built (windows of 112 px in every block but the last);
- the same tower with full attention in every block (``fullatt_block_indexes``: all);
- qwen3_vl (full attention everywhere).
transformers runs one SDPA call per window and image when the tower is not on flash-attn, so
if the first is much slower than the second, the windows' loop is the cost. Writes
vit_timing.json: seconds per forward+backward (median of ``--iters``), tokens per image, the
same for the forward alone, and each case's tower and sheet. A CPU timing of the first two
(8 images) gave 9.6 s and 10.8 s: in compute the windows cost nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import torch  # noqa: E402
from learning_proof import config_files, layered_config  # noqa: E402

from drawtune.config import completed, settings  # noqa: E402
from drawtune.coords import ResizeSpec, smart_resize  # noqa: E402
from drawtune.train import swift_plugin  # noqa: E402
from drawtune.train.tiny_model import TinySize, build_config  # noqa: E402

# the learning proof's runs whose towers are timed: their overrides (after the family's own)
RUNS = {
    "qwen2_5_vl": ("lp-12k.yaml", "lp-vision.yaml", "lp-qwen2_5_vl.yaml"),
    "qwen3_vl": ("lp-12k.yaml", "lp-vision.yaml"),
}
# (name, family, full attention in every block, drawtune's one varlen call per block)
CASES = (
    ("qwen2_5_vl_windows", "qwen2_5_vl", False, False),
    ("qwen2_5_vl_full", "qwen2_5_vl", True, False),
    ("qwen2_5_vl_varlen", "qwen2_5_vl", False, True),
    ("qwen3_vl", "qwen3_vl", False, False),
    ("qwen3_vl_varlen", "qwen3_vl", False, True),
)
# Qwen2.5-VL-7B's own tower (transformers' default vision config), random weights, frozen as
# LoRA trains it: forward only, 8 sheets of 1024 x 1024 px
REAL_IMAGES, REAL_SHEET = 8, (1024, 1024)


def run_shape(family: str) -> tuple[TinySize, tuple[int, int], ResizeSpec]:
    """The tower size, the sheet size and the image bounds of that family's run, from the same
    layered config the run trains with (a landscape sheet is width x width/sqrt(2), as
    drawtune.data.synth draws it)."""
    files = config_files(family, "detect", [BENCH / "overrides" / f for f in RUNS[family]])
    cfg = completed(layered_config(files))
    tiny = {k: v for k, v in cfg["model"]["tiny"].items() if k != "seed"}
    width = cfg["datasets"]["demo"]["synthetic"]["width"]
    s = settings(cfg, "demo")
    return (
        TinySize(**tiny),
        (width, int(round(width / 2**0.5))),
        ResizeSpec(s["min_pixels"], s["max_pixels"]),
    )


def tower(family: str, size: TinySize | None, full: bool, device: str):
    if size is None:
        from transformers import Qwen2_5_VLConfig

        cfg = Qwen2_5_VLConfig().vision_config
    else:
        cfg = build_config(family, size).vision_config
    cfg._attn_implementation = "sdpa"
    if full:
        cfg.fullatt_block_indexes = list(range(size.vision_depth))
    if family == "qwen2_5_vl":
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
            Qwen2_5_VisionTransformerPretrainedModel as Tower,
        )
    else:
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel as Tower
    torch.manual_seed(0)
    return Tower(cfg).to(device, torch.bfloat16), cfg


def batch(cfg, sheet: tuple[int, int], bounds: ResizeSpec, n: int, device: str):
    patch = cfg.patch_size
    factor = patch * cfg.spatial_merge_size
    rw, rh = smart_resize(*sheet, ResizeSpec(bounds.min_pixels, bounds.max_pixels, factor))
    grid = torch.tensor([[1, rh // patch, rw // patch]] * n, device=device)
    dim = cfg.in_channels * cfg.temporal_patch_size * patch * patch
    x = torch.randn(int(grid.prod(-1).sum()), dim, device=device, dtype=torch.bfloat16)
    return x, grid


def _last(out):
    if isinstance(out, torch.Tensor):
        return out
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def timed(fn, iters: int, device: str) -> float:
    times = []
    for _ in range(iters):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def pooled(m, x, grid):
    out = m(x, grid_thw=grid)
    p = out.pooler_output if hasattr(out, "pooler_output") else _last(out)
    return torch.cat(list(p)) if isinstance(p, (list, tuple)) else p


def varlen_error(m, cfg, x, grid) -> dict:
    """Largest difference, relative to the largest value, between the tower's SDPA output (and
    its first block's qkv gradient) and the same with the varlen call."""
    res = {}
    for impl in ("sdpa", swift_plugin.VARLEN_ATTENTION):
        cfg._attn_implementation = impl
        m.zero_grad(set_to_none=True)
        out = pooled(m, x, grid)
        out.float().pow(2).mean().backward()
        res[impl] = (out.detach().float(), m.blocks[0].attn.qkv.weight.grad.float())
    (a, ga), (b, gb) = res["sdpa"], res[swift_plugin.VARLEN_ATTENTION]
    m.zero_grad(set_to_none=True)
    return {
        "out_rel_err": round(float((a - b).abs().max() / a.abs().max()), 5),
        "grad_rel_err": round(float((ga - gb).abs().max() / ga.abs().max()), 5),
    }


def measure(
    family: str, full: bool, images: int, iters: int, device: str, varlen: bool = False
) -> dict:
    size, sheet, bounds = run_shape(family)
    m, cfg = tower(family, size, full, device)
    x, grid = batch(cfg, sheet, bounds, images, device)
    extra = varlen_error(m, cfg, x, grid) if varlen else {}
    cfg._attn_implementation = swift_plugin.VARLEN_ATTENTION if varlen else "sdpa"

    def fwd():
        with torch.no_grad():
            _last(m(x, grid_thw=grid))

    def step():
        m.zero_grad(set_to_none=True)
        _last(m(x, grid_thw=grid)).float().sum().backward()

    for _ in range(3):  # warm up kernels and allocator
        step()
    return {
        "tower": asdict(size),
        "sheet": list(sheet),
        "tokens_per_image": int(grid[0].prod()),
        "fwd_bwd_s": round(timed(step, iters, device), 4),
        "fwd_s": round(timed(fwd, iters, device), 4),
        **extra,
    }


def measure_real(varlen: bool, iters: int, device: str) -> dict:
    """Qwen2.5-VL-7B's tower, frozen: forward seconds for REAL_IMAGES sheets."""
    m, cfg = tower("qwen2_5_vl", None, False, device)
    m.requires_grad_(False)
    x, grid = batch(cfg, REAL_SHEET, ResizeSpec(256 * 28 * 28, 1280 * 28 * 28), REAL_IMAGES, device)
    cfg._attn_implementation = swift_plugin.VARLEN_ATTENTION if varlen else "sdpa"

    def fwd():
        with torch.no_grad():
            _last(m(x, grid_thw=grid))

    for _ in range(2):
        fwd()
    res = {
        "sheet": list(REAL_SHEET),
        "images": REAL_IMAGES,
        "tokens_per_image": int(grid[0].prod()),
        "fwd_s": round(timed(fwd, iters, device), 4),
    }
    return res


def save(res: dict, out: str) -> None:
    """vit_timing.json with the cases so far (a lease that ends mid-way keeps what ran)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "vit_timing.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/vit_timing"))
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--real", action="store_true", help="also Qwen2.5-VL-7B's tower, forward")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    res = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "images": a.images,
    }
    if device == "cuda":
        # registered only: each case sets its attention itself (the plugin's patched forward
        # would switch every SDPA tower to the varlen call)
        swift_plugin.register_varlen()
    for name, family, full, varlen in CASES:
        if varlen and device != "cuda":
            continue
        try:
            res[name] = measure(family, full, a.images, a.iters, device, varlen)
        except Exception as e:  # a PyTorch without varlen_attn: recorded, the others go on
            res[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
        print(name, res[name], flush=True)
        save(res, a.out)
        if device == "cuda":
            torch.cuda.empty_cache()
    if device == "cuda" and a.real:
        for varlen in (False, True):
            name = "qwen2_5_vl_7b_tower_" + ("varlen" if varlen else "sdpa")
            try:
                res[name] = measure_real(varlen, max(3, a.iters // 2), device)
            except Exception as e:
                res[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
            print(name, res[name], flush=True)
            save(res, a.out)
            torch.cuda.empty_cache()
    save(res, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
