"""Three speed-ups that ms-swift has no switch for, loaded into ``swift sft`` (the third also
into ``swift infer``) through its own extension point (``--external_plugins``; this file is
imported by path, in the trainer and in every data-loader worker). Each is off unless its
environment variable turns it on (``plugin_env``), and none changes what the model computes
for a real token.

``DRAWTUNE_CAUSAL_MASK=1``
    Training batches are padded on the right. A causal model's real tokens then never see a pad
    token, so the padding mask adds nothing but forces attention onto the slower masked path
    (cuDNN without the causal shortcut: 28 % of an H200 step, BENCHMARKS.md). After ms-swift's
    collator has computed the position ids (from the true mask), the mask is replaced by ones:
    attention runs as plain causal attention. Left-padded, packed or padding-free batches are
    left as they are.

``DRAWTUNE_VISION_CACHE_GIB=N``
    A frozen vision tower computes the same output for the same image every epoch. Its
    per-image outputs (the merged embeddings and the deepstack features of Qwen3-VL) are kept on
    the GPU, up to N GiB, and reused; only images not seen before go through the tower. Keyed by
    two independent 64-bit fingerprints of the image's pixel patches and its grid. Only while
    training with gradients on and every vision parameter frozen.

``DRAWTUNE_VISION_VARLEN=1``
    Without flash-attn (it has no wheel on PyPI), transformers runs a Qwen vision tower's
    attention as one SDPA call per attention window and image: Qwen2.5-VL's windows of 112 px
    make hundreds of tiny calls per block, and its tower ran 10x slower than with full attention
    on an H200 (BENCHMARKS.md). The towers' attention then runs as one variable-length
    FlashAttention call per block, PyTorch's own ``torch.nn.attention.varlen.varlen_attn``, on
    the same window boundaries: registered with transformers' ``AttentionInterface`` under a
    name that selects its variable-length path, set on the vision config only (the language
    model keeps SDPA), and only for CUDA inputs in half precision.
"""

from __future__ import annotations

import os

CAUSAL_ENV = "DRAWTUNE_CAUSAL_MASK"
CACHE_ENV = "DRAWTUNE_VISION_CACHE_GIB"
VARLEN_ENV = "DRAWTUNE_VISION_VARLEN"
# "flash" in the name is what makes transformers' vision attention pass the window boundaries
# (cu_seqlens) to one call (transformers.utils.generic.is_flash_attention_requested)
VARLEN_ATTENTION = "flash_varlen_torch"


def plugin_env(causal_mask: bool, vision_cache_gib: float, vision_varlen: bool = False) -> dict:
    """The environment that turns the speed-ups on for one ``swift sft`` (or, the varlen call
    alone, one ``swift infer``)."""
    env = {}
    if causal_mask:
        env[CAUSAL_ENV] = "1"
    if vision_cache_gib and vision_cache_gib > 0:
        env[CACHE_ENV] = f"{float(vision_cache_gib):g}"
    if vision_varlen:
        env[VARLEN_ENV] = "1"
    return env


def varlen_available() -> bool:
    """PyTorch has ``varlen_attn`` (2.10 and later) and a CUDA device to run it on."""
    import importlib.util

    import torch

    return (
        torch.cuda.is_available()
        and importlib.util.find_spec("torch.nn.attention.varlen") is not None
        and hasattr(importlib.import_module("torch.nn.attention.varlen"), "varlen_attn")
    )


# ------------------------------------------------------------------ the causal-only mask
def right_padded(mask) -> bool:
    """True when every row of a 2-D 0/1 mask is ones followed by zeros (right padding)."""
    import torch

    if not torch.is_tensor(mask) or mask.dim() != 2:
        return False
    m = mask.to(torch.int64)
    lengths = m.sum(dim=1, keepdim=True)
    positions = torch.arange(m.shape[1], device=m.device).unsqueeze(0)
    return bool(torch.equal(m, (positions < lengths).to(torch.int64)))


def drop_padding_mask(batch: dict) -> dict:
    """``batch`` with a right-padding mask replaced by ones (its position ids already made)."""
    mask = batch.get("attention_mask")
    if mask is not None and right_padded(mask) and not bool(mask.all()):
        import torch

        batch["attention_mask"] = torch.ones_like(mask)
    return batch


def _patch_collator() -> None:
    from swift.template import Template

    if getattr(Template.data_collator, "_drawtune", False):
        return
    original = Template.data_collator

    def data_collator(self, batch, *, padding_to=None):
        res = original(self, batch, padding_to=padding_to)
        if (
            self.is_training
            and self.padding_side == "right"
            and not getattr(self, "padding_free", False)
            and not getattr(self, "packing", False)
        ):
            drop_padding_mask(res)
        return res

    data_collator._drawtune = True
    Template.data_collator = data_collator


# ------------------------------------------------------------------ the vision-output cache
class VisionCache:
    """Per-image outputs of a frozen vision tower, on its device, up to ``limit`` bytes."""

    def __init__(self, limit_bytes: int):
        self.limit = int(limit_bytes)
        self.used = 0
        self.store: dict = {}
        self.hits = self.misses = 0
        self._weights: dict = {}

    def keys(self, pixel_values, grid_thw) -> list[tuple]:
        """Two fingerprints of each image's patch rows, with its grid and its row count."""
        import torch

        rows = grid_thw.prod(-1).tolist()
        chunks = torch.split(pixel_values.reshape(pixel_values.shape[0], -1), rows)
        sums = []
        for chunk in chunks:
            flat = chunk.reshape(-1).to(torch.float64)
            w = self._weight(flat.numel(), flat.device)
            sums.append(torch.stack([(flat * w[0]).sum(), (flat * w[1]).sum()]))
        values = torch.stack(sums).tolist() if sums else []
        grids = grid_thw.tolist()
        return [(tuple(g), n, a, b) for g, n, (a, b) in zip(grids, rows, values, strict=True)]

    def _weight(self, n: int, device):
        import torch

        key = (n, str(device))
        if key not in self._weights:
            gen = torch.Generator().manual_seed(20261201 + n)
            self._weights[key] = torch.rand(2, n, generator=gen, dtype=torch.float64).to(device)
        return self._weights[key]

    def put(self, key, pooled, deepstack) -> None:
        size = sum(t.numel() * t.element_size() for t in (pooled, *deepstack))
        if key in self.store or self.used + size > self.limit:
            return
        self.store[key] = (pooled.detach().clone(), [d.detach().clone() for d in deepstack])
        self.used += size


def cached_image_features(cache: VisionCache, compute, pixel_values, grid_thw):
    """``compute(pixel_values, grid_thw)`` -> (per-image pooled tuple, deepstack list), with the
    images found in ``cache`` taken from it and only the others computed (then stored)."""
    import torch

    keys = cache.keys(pixel_values, grid_thw)
    rows = grid_thw.prod(-1).tolist()
    missing = [i for i, k in enumerate(keys) if k not in cache.store]
    cache.hits += len(keys) - len(missing)
    cache.misses += len(missing)
    fresh: dict = {}
    if missing:
        starts = [0]
        for r in rows:
            starts.append(starts[-1] + r)
        pix = torch.cat([pixel_values[starts[i] : starts[i + 1]] for i in missing])
        grid = grid_thw[missing]
        pooled, deepstack = compute(pix, grid)
        tokens = [p.shape[0] for p in pooled]
        split_ds = [torch.split(d, tokens) for d in deepstack]
        for j, i in enumerate(missing):
            fresh[i] = (pooled[j], [s[j] for s in split_ds])
            cache.put(keys[i], *fresh[i])
    parts = [fresh[i] if i in fresh else cache.store[k] for i, k in enumerate(keys)]
    pooled = tuple(p for p, _ in parts)
    n_ds = len(parts[0][1]) if parts else 0
    deepstack = [torch.cat([ds[j] for _, ds in parts]) for j in range(n_ds)]
    return pooled, deepstack


def _frozen(module) -> bool:
    return not any(p.requires_grad for p in module.parameters())


def _patch_qwen3_vl(limit_gib: float) -> None:
    import torch
    from transformers.models.qwen3_vl import modeling_qwen3_vl as mq

    cls = mq.Qwen3VLModel
    if getattr(cls.get_image_features, "_drawtune", False):
        return
    original = cls.get_image_features
    cache = VisionCache(int(limit_gib * 2**30))

    def get_image_features(self, pixel_values, image_grid_thw=None, **kwargs):
        visual = self.visual
        if not (self.training and torch.is_grad_enabled() and _frozen(visual)):
            return original(self, pixel_values, image_grid_thw, **kwargs)

        kwargs.pop("return_dict", None)

        def compute(pix, grid):
            out = original(self, pix, grid, return_dict=True, **kwargs)
            return out.pooler_output, list(out.deepstack_features or [])

        pooled, deepstack = cached_image_features(cache, compute, pixel_values, image_grid_thw)
        return mq.BaseModelOutputWithDeepstackFeatures(
            last_hidden_state=None, pooler_output=pooled, deepstack_features=deepstack
        )

    get_image_features._drawtune = True
    get_image_features.cache = cache
    cls.get_image_features = get_image_features


# ------------------------------------------------------------------ one varlen call per block
def varlen_attention(
    module,
    query,
    key,
    value,
    attention_mask=None,
    scaling=None,
    dropout=0.0,
    cu_seq_lens_q=None,
    cu_seq_lens_k=None,
    max_length_q=None,
    max_length_k=None,
    is_causal=False,
    varlen=None,
    **kwargs,
):
    """transformers' attention-function signature (query, key, value: (1, heads, tokens, dim),
    the vision towers' layout) -> ((1, tokens, heads, dim), None): each segment of
    ``cu_seq_lens_q`` attends only to itself, in one call. ``varlen`` stands in for PyTorch's
    ``varlen_attn`` (tests on a machine without CUDA)."""
    import torch

    if cu_seq_lens_q is None or attention_mask is not None or is_causal or dropout:
        raise ValueError(
            f"{VARLEN_ATTENTION} is for the vision towers' unmasked, non-causal attention over "
            "cu_seqlens segments; this call has "
            f"cu_seqlens={cu_seq_lens_q is not None}, mask={attention_mask is not None}, "
            f"causal={is_causal}, dropout={dropout}"
        )
    if varlen is None:
        from torch.nn.attention.varlen import varlen_attn as varlen
    cu_q = cu_seq_lens_q.to(torch.int32)
    cu_k = cu_q if cu_seq_lens_k is None else cu_seq_lens_k.to(torch.int32)
    max_q = int(max_length_q) if max_length_q is not None else int((cu_q[1:] - cu_q[:-1]).max())
    max_k = int(max_length_k) if max_length_k is not None else int((cu_k[1:] - cu_k[:-1]).max())
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))
    out = varlen(q, k, v, cu_q, cu_k, max_q, max_k, scale=scaling)
    return out.unsqueeze(0), None


def _vision_towers() -> list:
    """The vision towers of the families drawtune trains whose attention loops over segments."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as m25
    from transformers.models.qwen3_vl import modeling_qwen3_vl as m3

    return [m25.Qwen2_5_VisionTransformerPretrainedModel, m3.Qwen3VLVisionModel]


def use_varlen(config, weight) -> bool:
    """Switch a vision config from SDPA to the varlen call: CUDA, half precision, SDPA asked."""
    import torch

    return (
        config._attn_implementation == "sdpa"
        and weight.is_cuda
        and weight.dtype in (torch.float16, torch.bfloat16)
    )


def register_varlen(varlen=None) -> None:
    """Make ``VARLEN_ATTENTION`` a transformers attention implementation (a config set to it
    by hand uses it; nothing switches to it by itself)."""
    import functools

    from transformers import AttentionInterface

    AttentionInterface.register(
        VARLEN_ATTENTION,
        varlen_attention if varlen is None else functools.partial(varlen_attention, varlen=varlen),
    )


def _patch_vision_varlen(varlen=None) -> None:
    """Register the varlen call and make every vision tower of ``_vision_towers`` switch its
    SDPA config to it on its first CUDA half-precision forward."""
    register_varlen(varlen)
    for cls in _vision_towers():
        if getattr(cls.forward, "_drawtune", False):
            continue
        original = cls.forward

        def forward(self, hidden_states, *args, _original=original, **kwargs):
            if use_varlen(self.config, self.patch_embed.proj.weight):
                self.config._attn_implementation = VARLEN_ATTENTION
            return _original(self, hidden_states, *args, **kwargs)

        forward._drawtune = True
        cls.forward = forward


def install(environ=None) -> None:
    """Apply the speed-ups the environment asks for (called when ms-swift imports this file)."""
    environ = os.environ if environ is None else environ
    if environ.get(CAUSAL_ENV) == "1":
        _patch_collator()
    gib = float(environ.get(CACHE_ENV) or 0)
    if gib > 0:
        _patch_qwen3_vl(gib)
    if environ.get(VARLEN_ENV) == "1":
        _patch_vision_varlen()


if __name__ != "__main__" and (
    os.environ.get(CAUSAL_ENV) == "1"
    or float(os.environ.get(CACHE_ENV) or 0) > 0
    or os.environ.get(VARLEN_ENV) == "1"
):
    install()
