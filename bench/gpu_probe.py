"""Where one LoRA training step and one batched generation spend their time on a random
Qwen3-VL-4B-shaped model, and how much each speed lever moves them (issue 12).

One process, one model load, every setting timed with CUDA events after warm-up, so that a single
8-10 minute call on the GPU machine measures them all. This is a probe, below ms-swift: it tells
which levers are worth wiring into the workflow's rules; bench/gpu_speed.py then measures the
rules themselves against plain `swift sft` / `swift infer`.

    python bench/gpu_probe.py --out $OUT --budget 520

Writes gpu_probe.json (and profile_train.txt) under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from drawtune.coords import ResizeSpec  # noqa: E402
from drawtune.data.convert import answer_text  # noqa: E402
from drawtune.data.synth import draw_sheet  # noqa: E402
from drawtune.train.tiny_model import VISION_TOKENS, build_processor, tokenizer_files_dir  # noqa: E402

PROMPT = (
    "Detect every view, section_view, detail_view, title_block, table and note in this "
    'engineering drawing. Answer with a JSON list of {"bbox_2d": [x1, y1, x2, y2], "label": name}.'
)
LM_LINEARS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
T0 = time.time()
DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = os.environ.get("PROBE_TINY") == "1"  # a CPU smoke test of this script's logic


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def peak_gib():
    return torch.cuda.max_memory_allocated() / 2**30 if DEV == "cuda" else 0.0


def reset_peak():
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.empty_cache()


def qwen3_vl_4b_config():
    """The published Qwen3-VL-4B shape (4.44 B parameters), random weights."""
    from transformers import Qwen3VLConfig

    text = dict(
        vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        max_position_embeddings=262144, rms_norm_eps=1e-6, bos_token_id=151643,
        eos_token_id=151645, pad_token_id=151643,
        rope_parameters={"rope_type": "default", "rope_theta": 5000000.0,
                         "mrope_section": [24, 20, 20], "mrope_interleaved": True},
    )  # fmt: skip
    vision = dict(
        depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560,
        num_position_embeddings=2304, deepstack_visual_indexes=[5, 11, 17],
        hidden_act="gelu_pytorch_tanh",
    )  # fmt: skip
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=VISION_TOKENS["<|image_pad|>"],
        video_token_id=VISION_TOKENS["<|video_pad|>"],
        vision_start_token_id=VISION_TOKENS["<|vision_start|>"],
        vision_end_token_id=VISION_TOKENS["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def samples(n: int, side: int = 1024):
    spec = ResizeSpec(min_pixels=3136, max_pixels=side * side)
    out = []
    for i in range(n):
        img, objs = draw_sheet(0, i, width=side, height=side)
        boxes = [{"label": lab, "bbox": b} for lab, b in objs]
        out.append((img.convert("RGB"), answer_text(boxes, "qwen3_vl", side, side, spec)))
    return out


def chat(answer: str | None) -> str:
    user = f"<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{PROMPT}<|im_end|>\n"
    if answer is None:
        return user + "<|im_start|>assistant\n"
    return user + f"<|im_start|>assistant\n{answer}<|im_end|>\n"


def train_batch(proc, data, b: int, offset: int):
    rows = [data[(offset + i) % len(data)] for i in range(b)]
    proc.tokenizer.padding_side = "right"
    enc = proc(
        text=[chat(a) for _, a in rows], images=[im for im, _ in rows], padding=True,
        return_tensors="pt",
    )  # fmt: skip
    ids = enc["input_ids"]
    labels = ids.clone()
    start = proc.tokenizer.convert_tokens_to_ids("<|im_start|>")
    for r in range(ids.shape[0]):
        last = (ids[r] == start).nonzero().max().item()
        labels[r, : last + 3] = -100  # <|im_start|> assistant \n
    labels[enc["attention_mask"] == 0] = -100
    # ms-swift's logits_to_keep for batches: the suffix from the earliest answer token
    first = (labels != -100).int().argmax(-1).min().item()
    keep = ids.shape[1] - first + 1
    enc["labels"] = labels[:, -keep:]
    enc["logits_to_keep"] = keep
    enc["full_labels"] = labels  # liger's fused loss takes every position (no logits_to_keep)
    return {k: (v.to(DEV) if torch.is_tensor(v) else v) for k, v in enc.items()}


def set_dropout(model, p: float) -> None:
    from peft.tuners.lora import LoraLayer

    for m in model.modules():
        if isinstance(m, LoraLayer):
            for k in m.lora_dropout:
                m.lora_dropout[k] = torch.nn.Dropout(p) if p > 0 else torch.nn.Identity()


class VisionCache:
    """Frozen vision tower: outputs computed once per image and replayed (keyed by batch tag)."""

    def __init__(self, visual):
        self.orig, self.store, self.tag, self.on = visual.forward, {}, None, False
        visual.forward = self.forward

    def forward(self, *a, **k):
        if not self.on:
            return self.orig(*a, **k)
        if self.tag not in self.store:
            with torch.no_grad():
                self.store[self.tag] = self.orig(*a, **k)
        out = self.store[self.tag]  # a fresh output object: the caller rewrites its fields
        return type(out)(**dict(out.items()))


LIGER = {"on": False}


def fwd_args(batch):
    b = dict(batch)
    full = b.pop("full_labels")
    if LIGER["on"]:
        b.pop("logits_to_keep")
        b["labels"] = full
    return b


def time_train(model, opt, batches, steps, warm, cache=None):
    sync()
    reset_peak()
    times = []
    for i in range(warm + steps):
        tag, batch = batches[i % len(batches)]
        if cache:
            cache.tag = tag
        t = time.perf_counter()
        out = model(**fwd_args(batch))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= warm:
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], peak_gib(), out.loss.item()


def over(budget: float, need: float) -> bool:
    return time.time() - T0 + need > budget


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/probe"))
    ap.add_argument("--budget", type=float, default=520)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--skip-plain", action="store_true", help="only the liger rows onwards")
    ap.add_argument(
        "--second",
        action="store_true",
        help="static-cache generation first, then bf16-adapter rows only",
    )
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu"
    res = {"device": name, "torch": torch.__version__, "train": [], "vision": {},
           "generate": [], "command": " ".join(sys.argv)}  # fmt: skip

    def save():
        (out / "gpu_probe.json").write_text(json.dumps(res, indent=2) + "\n")

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText
    from transformers.integrations.liger import apply_liger_kernel

    proc = build_processor("qwen3_vl", tokenizer_files_dir())
    proc.image_processor.size = {"shortest_edge": 3136, "longest_edge": 1024 * 1024}
    data = samples(8 if TINY else 48, 256 if TINY else 1024)
    torch.manual_seed(0)
    with torch.device(DEV):
        if TINY:
            from drawtune.train.tiny_model import TinySize, build_config

            cfg = build_config("qwen3_vl", TinySize())
        else:
            cfg = qwen3_vl_4b_config()
        model = AutoModelForImageTextToText.from_config(
            cfg, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    res["parameters"] = sum(p.numel() for p in model.parameters())
    res["weights_gib"] = torch.cuda.memory_allocated() / 2**30 if DEV == "cuda" else 0.0
    print(f"[{time.time() - T0:.0f}s] model {res['parameters'] / 1e9:.2f} B", flush=True)

    def gen(model, name, b, new=128, **kw):
        if over(a.budget, 70):
            print(f"skip {name}: budget", flush=True)
            return
        proc.tokenizer.padding_side = "left"
        rows = [data[i % len(data)] for i in range(b)]
        enc = proc(text=[chat(None)] * b, images=[im for im, _ in rows], padding=True,
                   return_tensors="pt").to(DEV)  # fmt: skip
        try:
            with torch.no_grad():
                model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False, **kw)
                sync()
                reset_peak()
                t = time.time()
                model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False, **kw)
                sync()
                dt = time.time() - t
                t = time.time()
                model.generate(**enc, max_new_tokens=1, min_new_tokens=1, do_sample=False, **kw)
                sync()
                prefill = time.time() - t
            row = {"name": name, "batch": b, "new_tokens": new, "s": dt, "images_per_s": b / dt,
                   "prefill_s": prefill, "decode_ms_per_token": (dt - prefill) / (new - 1) * 1000,
                   "peak_gib": peak_gib(), **kw}  # fmt: skip
        except torch.OutOfMemoryError:
            row = {"name": name, "batch": b, "oom": True}
        except Exception as e:  # noqa: BLE001 - a static cache that does not compile: say why
            row = {"name": name, "batch": b, "error": f"{type(e).__name__}: {e}"[:400], **kw}
        reset_peak()
        proc.tokenizer.padding_side = "right"
        res["generate"].append(row)
        save()
        print(f"[{time.time() - T0:.0f}s] {json.dumps(row)}", flush=True)

    if a.second:  # a static cache with a compiled decode step, before Liger patches the model
        model.eval()
        gen(model, "dynamic-b64", 64)
        gen(model, "static-b64-no-liger", 64, cache_implementation="static")
        model.train()

    # ---- the frozen vision tower alone (no grad), per image
    vb = train_batch(proc, data, 8, 0)
    res["tokens_per_sample"] = vb["input_ids"].shape[1]
    with torch.no_grad():
        for _ in range(2):
            model.model.visual(vb["pixel_values"].to(torch.bfloat16), grid_thw=vb["image_grid_thw"])
        sync()
        t = time.time()
        for _ in range(3):
            model.model.visual(vb["pixel_values"].to(torch.bfloat16), grid_thw=vb["image_grid_thw"])
        sync()
    res["vision"]["s_per_image"] = (time.time() - t) / 24
    print(f"vision forward {res['vision']['s_per_image'] * 1000:.1f} ms/image", flush=True)

    model.config.use_cache = False
    lcfg = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=LM_LINEARS)
    model = get_peft_model(model, lcfg)
    if a.second:  # ms-swift's --lora_dtype bfloat16: no float32 adapters, no input casts
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.data = p.data.to(torch.bfloat16)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    cache = VisionCache(model.base_model.model.model.visual)
    batches = {b: [(f"{b}-{i}", train_batch(proc, data, b, i * b)) for i in range(3)]
               for b in (1, 4, 8, 16)}  # fmt: skip

    def run(name, b, ckpt=False, dropout=0.05, cached=False, steps=a.steps, warm=2):
        if over(a.budget, 60):
            print(f"skip {name}: budget", flush=True)
            return
        set_dropout(model, dropout)
        if ckpt:
            kw = {"use_reentrant": False}
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)
        else:
            model.gradient_checkpointing_disable()
        cache.on = cached
        try:
            dt, peak, loss = time_train(model, opt, batches[b], steps, warm, cache)
            row = {"name": name, "batch": b, "ckpt": ckpt, "dropout": dropout,
                   "cached_vision": cached, "s_per_step": dt, "samples_per_s": b / dt,
                   "peak_gib": peak, "loss": loss}  # fmt: skip
        except torch.OutOfMemoryError:
            row = {"name": name, "batch": b, "ckpt": ckpt, "oom": True}
        opt.zero_grad(set_to_none=True)
        reset_peak()
        res["train"].append(row)
        save()
        print(f"[{time.time() - T0:.0f}s] {json.dumps(row)}", flush=True)

    if a.second:
        apply_liger_kernel(model, {})
        LIGER["on"] = True
        for name, b in (("b8-liger-bf16lora", 8), ("b16-liger-bf16lora", 16)):
            run(name, b)
        run("b8-liger-bf16lora-ckpt", 8, ckpt=True)
        save()
        return 0
    if not a.skip_plain:
        run("workflow-defaults", 1, ckpt=True, steps=4)
        run("b8", 8)
        run("b8-ckpt", 8, ckpt=True)
        run("b8-nodrop", 8, dropout=0.0)
    try:
        apply_liger_kernel(model, {})
        res["liger"] = LIGER["on"] = True
    except ImportError as e:  # no liger-kernel (or no triton) here: the rows below run without
        print(f"no liger: {e}", flush=True)
        res["liger"] = False
    run("b8-liger", 8)
    run("b8-liger-nodrop", 8, dropout=0.0)
    run("b16-liger-nodrop", 16, dropout=0.0)
    run("b8-liger-nodrop-cachedvit", 8, dropout=0.0, cached=True)
    run("b16-liger-nodrop-cachedvit", 16, dropout=0.0, cached=True)
    run("b4-liger-nodrop", 4, dropout=0.0)

    # ---- where the time goes: one profiled step of the best plain setting
    if not over(a.budget, 90):
        from torch.profiler import ProfilerActivity, profile

        set_dropout(model, 0.0)
        model.gradient_checkpointing_disable()
        cache.on = False
        b = batches[8][0][1]
        for _ in range(2):
            model(**fwd_args(b)).loss.backward()
            opt.zero_grad(set_to_none=True)
        sync()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(**fwd_args(b)).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40)
        (out / "profile_train.txt").write_text(table)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14), flush=True)
        save()

    # ---- generation: the merged-model path of the predict rule
    model = model.merge_and_unload()
    model.config.use_cache = True
    model.eval()
    proc.tokenizer.padding_side = "left"
    reset_peak()

    gen(model, "dynamic-b16", 16)
    gen(model, "dynamic-b64", 64)
    gen(model, "dynamic-b128", 128)
    gen(model, "dynamic-b256", 256)
    if not over(a.budget, 150):
        gen(model, "static-b64", 64, cache_implementation="static")
    save()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
