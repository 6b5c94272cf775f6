"""The locally built tiny models load with transformers and use the real Qwen-VL tokens."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from drawtune.train.tiny_model import VISION_TOKENS, build_tiny_model


@pytest.mark.parametrize("family, patch", [("qwen3_vl", 16), ("qwen2_5_vl", 14)])
def test_tiny_model_loads_and_runs(tmp_path, family, patch):
    out = tmp_path / family
    summary = build_tiny_model(family, out)
    assert 1_000_000 < summary["parameters"] < 20_000_000
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == family
    assert cfg["image_token_id"] == VISION_TOKENS["<|image_pad|>"]
    processor = AutoProcessor.from_pretrained(out)
    tok = processor.tokenizer
    for text, tid in VISION_TOKENS.items():
        assert tok.convert_tokens_to_ids(text) == tid
    assert processor.image_processor.patch_size == patch
    model = AutoModelForImageTextToText.from_pretrained(out)
    image = Image.new("RGB", (300, 200), "white")  # sides not multiples of the patch grid
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n"
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == 151936
    assert torch.isfinite(logits).all()


def test_tiny_model_is_deterministic(tmp_path):
    build_tiny_model("qwen3_vl", tmp_path / "a")
    build_tiny_model("qwen3_vl", tmp_path / "b")
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "b" / "model.safetensors").read_bytes()
