"""ms-swift sees the image at exactly the size drawtune's coordinates assume, and leaves the
answer's numbers alone: the two failure modes of Qwen-VL grounding fine-tunes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from drawtune.coords import ResizeSpec
from drawtune.data.convert import manifest_row, swift_row
from drawtune.train.swift_cmd import swift_env
from drawtune.train.tiny_model import build_tiny_model

PROBE = textwrap.dedent(
    """
    import json, sys
    from swift import get_processor, get_template
    model_dir, family, row = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    processor = get_processor(model_dir, model_type=family)
    template = get_template(processor, template_type=family)
    template.set_mode("train")
    enc = template.encode(row)
    grid = enc["image_grid_thw"].tolist()[0]
    labels = [t for t in enc["labels"] if t != -100]
    print(json.dumps({"grid": grid, "answer": processor.tokenizer.decode(labels)}))
    """
)


@pytest.mark.parametrize("family, size", [("qwen2_5_vl", (437, 309)), ("qwen3_vl", (437, 309))])
def test_swift_resize_and_answer_match_drawtune(tmp_path, family, size):
    model = tmp_path / "model"
    build_tiny_model(family, model)
    w, h = size  # neither side a multiple of 28 or 32
    Image.new("RGB", size, "white").save(tmp_path / "sheet.png")
    spec = ResizeSpec(min_pixels=3136, max_pixels=100_000)  # forces a downscale
    record = {
        "image": str(tmp_path / "sheet.png"),
        "sha256": "x",
        "width": w,
        "height": h,
        "boxes": [{"label": "view", "bbox": [10.0, 20.0, 200.5, 150.0]}],
    }
    row = swift_row(record, family, "Find views.", spec)
    manifest = manifest_row(record, family, spec)
    env = dict(os.environ, **swift_env(family, spec.min_pixels, spec.max_pixels, str(model)))
    out = (
        subprocess.run(
            [sys.executable, "-c", PROBE, str(model), family, json.dumps(row)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    got = json.loads(out)
    patch = 14 if family == "qwen2_5_vl" else 16
    _, gh, gw = got["grid"]
    assert (gw * patch, gh * patch) == (manifest["resized_width"], manifest["resized_height"])
    answer = row["messages"][1]["content"]
    assert got["answer"].startswith(answer)
    if family == "qwen2_5_vl":
        assert (manifest["frame_width"], manifest["frame_height"]) == (gw * 14, gh * 14)
