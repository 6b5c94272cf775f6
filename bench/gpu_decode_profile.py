"""Where a batched greedy generation step spends its time (issue 12): the model of
bench/gpu_speed.py, transformers' generate as ms-swift's transformers backend calls it.

    python bench/gpu_decode_profile.py --model bench/runs/qwen3_vl-4b --out $OUT [--static]

Prints the top operators by CPU and by CUDA time over 16 decode steps of a batch of 64, and the
seconds per step with the dynamic cache (and with a static cache + torch.compile, --static).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import torch  # noqa: E402
from gpu_probe import chat, samples  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/decode"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--static", action="store_true")
    ap.add_argument("--budget", type=float, default=200)
    a = ap.parse_args()
    t0 = time.time()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(
        a.model, dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda"
    ).eval()
    proc = AutoProcessor.from_pretrained(a.model)
    proc.image_processor.size = {"shortest_edge": 3136, "longest_edge": 1024 * 1024}
    proc.tokenizer.padding_side = "left"
    data = samples(16)
    imgs = [data[i % len(data)][0] for i in range(a.batch)]
    enc = proc(text=[chat(None)] * a.batch, images=imgs, padding=True, return_tensors="pt")
    enc = enc.to("cuda")
    res = {"batch": a.batch, "prompt_tokens": enc["input_ids"].shape[1]}

    def gen(new, **kw):
        torch.cuda.synchronize()
        t = time.time()
        with torch.no_grad():
            model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False, **kw)
        torch.cuda.synchronize()
        return time.time() - t

    gen(2)
    one, many = gen(1), gen(33)
    res["dynamic_s_per_step"] = (many - one) / 32
    res["prefill_s"] = one
    print(json.dumps(res), flush=True)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        gen(17)
    ka = prof.key_averages()
    (out / "decode_profile.txt").write_text(
        ka.table(sort_by="cpu_time_total", row_limit=40)
        + "\n\n"
        + ka.table(sort_by="cuda_time_total", row_limit=25)
    )
    print(ka.table(sort_by="cpu_time_total", row_limit=22), flush=True)
    if a.static and time.time() - t0 < a.budget:
        try:
            gen(4, cache_implementation="static")
            one = gen(1, cache_implementation="static")
            many = gen(33, cache_implementation="static")
            res["static_s_per_step"] = (many - one) / 32
        except Exception as e:  # noqa: BLE001 - record why the static path fails
            res["static_error"] = f"{type(e).__name__}: {e}"[:500]
    (out / "decode.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
