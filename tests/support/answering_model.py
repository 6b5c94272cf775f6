"""A tiny model that answers boxes: the project's random tiny model taught one fixed answer.

The random tiny model never writes a box (a few CPU minutes of training do not teach it the
answer's grammar), so nothing of the box scores would run on its answers. This helper teaches
it, in a few dozen steps of plain PyTorch on ms-swift's own template (the prompt exactly as
``swift infer`` builds it, drawing included), to answer every drawing with ``ANSWER``: real
boxes with real token probabilities, some right and some wrong on the synthetic drawings (the
title block and notes sit where the answer puts them, views do not). The workflow then runs on
it as an untrained base model with the real ``swift infer``.

Run as a script (a child process, since ms-swift reads the image-size bounds from the
environment): ``python answering_model.py TINY_MODEL OUT DATA.jsonl --steps N``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

# bottom-right title block and bottom-left notes as drawtune.data.synth places them, and a view
ANSWER = (
    '```json\n[{"bbox_2d": [650, 830, 985, 980], "label": "title_block"}, '
    '{"bbox_2d": [27, 836, 260, 959], "label": "note"}, '
    '{"bbox_2d": [420, 120, 640, 400], "label": "view"}]\n```'
)


def teach(
    model_dir: str, out: str, data: str, steps: int, lr: float, until: float, seed: int = 0
) -> None:
    import torch
    from swift.model import get_model_processor
    from swift.template import get_template

    torch.manual_seed(seed)
    model, processor = get_model_processor(
        model_dir, torch_dtype=torch.float32, model_type="qwen3_vl", attn_impl="sdpa"
    )
    template = get_template(processor, template_type="qwen3_vl")
    template.model = model
    template.set_mode("train")
    rows = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    samples = []
    for r in rows:
        messages = [r["messages"][0], {"role": "assistant", "content": ANSWER}]
        e = template.encode({"messages": messages, "images": r["images"]})
        ids = torch.tensor([e["input_ids"]])
        samples.append(
            {
                "input_ids": ids,
                "labels": torch.tensor([e["labels"]]),
                "pixel_values": torch.as_tensor(e["pixel_values"]).clone(),
                "image_grid_thw": torch.as_tensor(e["image_grid_thw"]).clone(),
                "mm_token_type_ids": (ids == processor.image_token_id).long(),
            }
        )
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    head = model.get_output_embeddings()
    for step in range(steps):
        batch = dict(samples[step % len(samples)])
        labels = batch.pop("labels")[0, 1:]
        hidden = model.model(**batch).last_hidden_state[0, :-1]
        answer = labels != -100  # the vocabulary's logits only where the answer is learnt
        loss = torch.nn.functional.cross_entropy(head(hidden[answer]), labels[answer])
        loss.backward()
        opt.step()
        opt.zero_grad()
        print(f"step {step} loss {loss.item():.3f}", flush=True)
        if loss.item() < until:
            break
    model.save_pretrained(out)
    processor.save_pretrained(out)


def answering_model(
    model_dir, out, data, env: dict, steps: int = 150, lr: float = 3e-3, log=None
) -> Path:
    """Teach ``model_dir`` (a tiny qwen3_vl model) ``ANSWER`` on the drawings of ``data``
    (ms-swift rows) in a child process with ms-swift's environment ``env``; returns ``out``."""
    cmd = [sys.executable, __file__, str(model_dir), str(out), str(data), "--steps", str(steps)]
    cmd += ["--lr", str(lr)]
    p = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    if log:
        Path(log).write_text(p.stdout + p.stderr)
    if p.returncode:
        raise RuntimeError(f"teaching the tiny model failed:\n{p.stderr[-3000:]}")
    return Path(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--until", type=float, default=0.3, help="stop below this loss")
    a = ap.parse_args()
    teach(a.model, a.out, a.data, a.steps, a.lr, a.until)
