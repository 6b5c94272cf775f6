"""The ms-swift plugin's speed-ups change nothing the model computes for a real token: the
causal-only mask (right padding), the frozen vision tower's output cache and the vision
towers' attention as one variable-length call per block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from drawtune.coords import ResizeSpec
from drawtune.data.convert import swift_row
from drawtune.train import swift_plugin
from drawtune.train.swift_cmd import swift_env
from drawtune.train.swift_plugin import VisionCache, cached_image_features, drop_padding_mask
from drawtune.train.tiny_model import build_tiny_model


def test_only_a_right_padding_mask_is_dropped():
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert torch.equal(
        drop_padding_mask({"attention_mask": right})["attention_mask"],
        torch.ones(2, 4, dtype=right.dtype),
    )
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert torch.equal(drop_padding_mask({"attention_mask": left})["attention_mask"], left)
    gap = torch.tensor([[1, 0, 1, 0]])
    assert torch.equal(drop_padding_mask({"attention_mask": gap})["attention_mask"], gap)
    four_d = torch.ones(1, 1, 3, 3)
    assert drop_padding_mask({"attention_mask": four_d})["attention_mask"] is four_d


def test_plugin_env_and_install_are_off_unless_asked():
    assert swift_plugin.plugin_env(False, 0) == {}
    assert swift_plugin.plugin_env(True, 12.5) == {
        "DRAWTUNE_CAUSAL_MASK": "1",
        "DRAWTUNE_VISION_CACHE_GIB": "12.5",
    }
    assert swift_plugin.plugin_env(False, 0, True) == {"DRAWTUNE_VISION_VARLEN": "1"}


def segment_sdpa(q, k, v, cu_q, cu_k, max_q, max_k, scale=None):
    """What varlen_attn computes, on a CPU: (tokens, heads, dim), each segment on its own."""
    assert cu_q.dtype == torch.int32 and max_q == int((cu_q[1:] - cu_q[:-1]).max())
    out = []
    for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), strict=True):
        seg = [t[a:b].transpose(0, 1) for t in (q, k, v)]
        out.append(F.scaled_dot_product_attention(*seg, scale=scale).transpose(0, 1))
    return torch.cat(out)


def whole_sdpa(q, k, v, cu_q, cu_k, max_q, max_k, scale=None):
    """A wrong stand-in that lets every token see every other: must be told apart."""
    seg = [t.transpose(0, 1) for t in (q, k, v)]
    return F.scaled_dot_product_attention(*seg, scale=scale).transpose(0, 1)


def tower_outputs(family, impl, varlen=None):
    """A tiny tower's merged output and its first block's qkv gradient with ``impl``."""
    from drawtune.train.tiny_model import TinySize, build_config

    if varlen is not None:
        swift_plugin.register_varlen(varlen)
    cfg = build_config(family, TinySize()).vision_config
    cfg._attn_implementation = "sdpa"
    tower = dict(zip(("qwen2_5_vl", "qwen3_vl"), swift_plugin._vision_towers(), strict=True))
    torch.manual_seed(0)
    m = tower[family](cfg)
    cfg._attn_implementation = impl  # switched after the model is built, as the plugin does
    grid = torch.tensor([[1, 16, 24], [1, 8, 8]])  # two images: several windows, unequal sizes
    dim = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size**2
    x = torch.randn(int(grid.prod(-1).sum()), dim, generator=torch.Generator().manual_seed(1))
    out = m(x, grid_thw=grid).pooler_output
    out = torch.cat(list(out)) if isinstance(out, (list, tuple)) else out
    out.pow(2).mean().backward()
    return out.detach(), m.blocks[0].attn.qkv.weight.grad


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_one_varlen_call_per_block_computes_what_sdpa_per_window_does(family):
    """The tower with its attention through varlen_attention (PyTorch's varlen_attn stood in
    for by SDPA per segment, as there is no CUDA here) gives transformers' own SDPA output and
    gradients; a stand-in that ignores the window boundaries does not."""
    out, grad = tower_outputs(family, "sdpa")
    v_out, v_grad = tower_outputs(family, swift_plugin.VARLEN_ATTENTION, segment_sdpa)
    torch.testing.assert_close(v_out, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v_grad, grad, rtol=1e-4, atol=1e-7)
    w_out, _ = tower_outputs(family, swift_plugin.VARLEN_ATTENTION, whole_sdpa)
    assert (w_out - out).abs().max() > 1e-4, "the windows' boundaries must matter"


def test_varlen_attention_refuses_a_call_it_is_not_for():
    q = torch.randn(1, 2, 6, 8)
    cu = torch.tensor([0, 2, 6])
    with pytest.raises(ValueError, match="mask=True"):
        swift_plugin.varlen_attention(
            None, q, q, q, attention_mask=torch.ones(1, 1, 6, 6), cu_seq_lens_q=cu,
            varlen=segment_sdpa,
        )  # fmt: skip
    with pytest.raises(ValueError, match="causal=True"):
        swift_plugin.varlen_attention(
            None, q, q, q, cu_seq_lens_q=cu, is_causal=True, varlen=segment_sdpa
        )
    out, _ = swift_plugin.varlen_attention(None, q, q, q, cu_seq_lens_q=cu, varlen=segment_sdpa)
    assert out.shape == (1, 6, 2, 8), "(batch, tokens, heads, dim) as transformers expects"


def test_the_patched_tower_switches_only_on_a_gpu_in_half_precision():
    swift_plugin._patch_vision_varlen(varlen=segment_sdpa)
    for cls in swift_plugin._vision_towers():
        assert cls.forward._drawtune
    cfg = type("Cfg", (), {"_attn_implementation": "sdpa"})()
    assert not swift_plugin.use_varlen(cfg, torch.zeros(1, dtype=torch.bfloat16)), "a CPU"
    cfg._attn_implementation = "flash_attention_2"
    assert not swift_plugin.use_varlen(cfg, torch.zeros(1)), "flash-attn left as it is"
    # a CPU tower through the patched forward keeps SDPA and its output
    out, _ = tower_outputs("qwen2_5_vl", "sdpa")
    assert out.shape[0] == (16 * 24 + 8 * 8) // 4


def test_the_patched_tower_switches_its_sdpa_config_to_the_varlen_call(monkeypatch):
    """Where use_varlen says yes (a GPU in bf16; here forced), the first forward moves the
    tower's config to the varlen call, and the output stays SDPA's."""
    swift_plugin._patch_vision_varlen(varlen=segment_sdpa)
    ref, _ = tower_outputs("qwen2_5_vl", "sdpa")
    seen = []
    monkeypatch.setattr(swift_plugin, "use_varlen", lambda cfg, w: seen.append(cfg) or True)
    swift_plugin.register_varlen(segment_sdpa)
    out, _ = tower_outputs("qwen2_5_vl", "sdpa")
    assert seen and seen[0]._attn_implementation == swift_plugin.VARLEN_ATTENTION
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def fake_tower(calls):
    """Per image: pooled = rows of its pixels times 2, two deepstack levels (x3, x4); each image
    of grid (1, h, w) has h*w patch rows and h*w/4 merged tokens."""

    def compute(pix, grid):
        calls.append(grid.shape[0])
        pooled, ds1, ds2 = [], [], []
        start = 0
        for t, h, w in grid.tolist():
            rows = t * h * w
            merged = pix[start : start + rows].reshape(rows // 4, -1)[:, :2]
            pooled.append(merged * 2)
            ds1.append(merged * 3)
            ds2.append(merged * 4)
            start += rows
        return tuple(pooled), [torch.cat(ds1), torch.cat(ds2)]

    return compute


def images(*seeds, h=4, w=4):
    pix = torch.cat(
        [torch.randn(h * w, 6, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    grid = torch.tensor([[1, h, w]] * len(seeds))
    return pix, grid


def test_vision_cache_computes_each_image_once_and_assembles_in_order():
    calls: list[int] = []
    compute = fake_tower(calls)
    cache = VisionCache(limit_bytes=10**9)
    pix, grid = images(1, 2)
    first = cached_image_features(cache, compute, pix, grid)
    assert calls == [2] and cache.misses == 2 and cache.hits == 0
    # a later batch: image 2 again (first now), a new image 3, image 1 again
    pix2, grid2 = images(2, 3, 1)
    pooled, deepstack = cached_image_features(cache, compute, pix2, grid2)
    assert calls == [2, 1], "only the unseen image goes through the tower"
    assert cache.hits == 2
    ref_pooled, ref_ds = compute(pix2, grid2)
    for got, want in zip(pooled, ref_pooled, strict=True):
        assert torch.equal(got, want)
    for got, want in zip(deepstack, ref_ds, strict=True):
        assert torch.equal(got, want)
    assert torch.equal(pooled[2], first[0][0])


def test_vision_cache_stops_storing_at_its_limit_but_still_answers():
    calls: list[int] = []
    compute = fake_tower(calls)
    one_image = 3 * 4 * 2 * 4  # pooled + 2 deepstack levels: 4 tokens x 2 floats x 4 bytes
    cache = VisionCache(limit_bytes=one_image)
    pix, grid = images(1, 2)
    cached_image_features(cache, compute, pix, grid)
    assert len(cache.store) == 1 and cache.used == one_image
    pooled, _ = cached_image_features(cache, compute, pix, grid)
    assert calls == [2, 1]
    assert torch.equal(pooled[1], compute(*images(2))[0][0])


def test_different_images_never_share_a_key():
    cache = VisionCache(limit_bytes=0)
    pix, grid = images(1, 2, 3)
    keys = cache.keys(pix, grid)
    assert len(set(keys)) == 3
    same = cache.keys(*images(1))
    assert same[0] == keys[0], "the same pixels give the same key"


PROBE = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from swift import get_model_processor, get_template
    model_dir, family, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    torch.manual_seed(0)
    model, processor = get_model_processor(
        model_dir, model_type=family, attn_impl="sdpa", torch_dtype=torch.float32
    )
    template = get_template(processor, template_type=family)
    template.model = model
    template.set_mode("train")
    template.padding_side = "right"
    import copy
    batch = [template.encode(r) for r in rows]
    plain = template.data_collator(copy.deepcopy(batch))  # the collator consumes its rows
    from drawtune.train import swift_plugin
    swift_plugin.install({"DRAWTUNE_CAUSAL_MASK": "1", "DRAWTUNE_VISION_CACHE_GIB": "1"})
    fast = template.data_collator(copy.deepcopy(batch))
    for p in model.model.visual.parameters():
        p.requires_grad_(False)
    model.train()
    for m in model.modules():  # deterministic: no dropout in the comparison
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    keep = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "position_ids")
    real = plain["attention_mask"].bool()
    out = {"padded": int((~real).sum()), "fast_mask_all_ones": bool(fast["attention_mask"].all()),
           "same_positions": bool(torch.equal(plain["position_ids"], fast["position_ids"]))}
    logits = []
    for inputs in (plain, fast, fast):  # the first computes the tower, the others reuse it
        kw = {k: inputs[k] for k in keep if k in inputs}
        logits.append(model(**kw).logits[real])
    cache = type(model.model).get_image_features.cache
    out["max_diff"] = float((logits[0] - logits[1]).abs().max())
    out["max_diff_cached"] = float((logits[0] - logits[2]).abs().max())
    out["cache"] = [cache.hits, cache.misses, len(cache.store)]
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("family", ["qwen3_vl"])
def test_plugin_changes_no_real_token_through_ms_swift(tmp_path, family):
    """ms-swift's own collator and a tiny model: the causal-only batch gives the real tokens the
    same logits as the masked one, and the cached vision outputs the same as computed ones."""
    model = tmp_path / "model"
    build_tiny_model(family, model)
    spec = ResizeSpec(min_pixels=3136, max_pixels=40_000)
    rows = []
    for i, n in enumerate((1, 4)):  # answers of different lengths: one row is padded
        Image.new("RGB", (200, 160), (255, 255 - 40 * i, 255)).save(tmp_path / f"s{i}.png")
        record = {
            "image": str(tmp_path / f"s{i}.png"),
            "sha256": str(i),
            "width": 200,
            "height": 160,
            "boxes": [
                {"label": "view", "bbox": [10.0 + k, 20.0, 100.0, 90.0 + k]} for k in range(n)
            ],
        }
        rows.append(swift_row(record, family, "Find views.", spec))
    env = dict(os.environ, **swift_env(family, spec.min_pixels, spec.max_pixels, str(model)))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), family, json.dumps(rows)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["padded"] > 0, "the test needs a padded row"
    assert out["fast_mask_all_ones"] and out["same_positions"]
    assert out["max_diff"] < 1e-4, out
    assert out["max_diff_cached"] < 1e-4, out
    # the masked pass computes both images (2 misses), the two causal passes take them from
    # the cache (4 hits)
    assert out["cache"] == [4, 2, 2]
