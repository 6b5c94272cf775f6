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
from drawtune.train.tiny_model import TinySize, build_config  # noqa: E402

# the learning proof's runs whose towers are timed: their overrides (after the family's own)
RUNS = {
    "qwen2_5_vl": ("lp-12k.yaml", "lp-vision.yaml", "lp-qwen2_5_vl.yaml"),
    "qwen3_vl": ("lp-12k.yaml", "lp-vision.yaml"),
}
# (name, family, full attention in every block)
CASES = (
    ("qwen2_5_vl_windows", "qwen2_5_vl", False),
    ("qwen2_5_vl_full", "qwen2_5_vl", True),
    ("qwen3_vl", "qwen3_vl", False),
)


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


def tower(family: str, size: TinySize, full: bool, device: str):
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


def measure(family: str, full: bool, images: int, iters: int, device: str) -> dict:
    size, sheet, bounds = run_shape(family)
    m, cfg = tower(family, size, full, device)
    x, grid = batch(cfg, sheet, bounds, images, device)

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
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/vit_timing"))
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    res = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "images": a.images,
    }
    for name, family, full in CASES:
        res[name] = measure(family, full, a.images, a.iters, device)
        print(name, res[name], flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vit_timing.json").write_text(json.dumps(res, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
