"""The speed levers left after the workflow's defaults (bf16 LoRA, Liger, micro-batch 8), each
measured in one process on a random Qwen3-VL-4B-shaped model (issue 12, second pass).

Training goes through ms-swift's own loss path (``logits_to_keep`` over the answer, which Liger's
fused loss honours). Rows, one setting at a time:

* Liger's fused loss alone (no Liger RMSNorm/RoPE), eager, then with the decoder layers compiled
  (regional ``torch.compile``), then compiled with float8 base matmuls (torchao rowwise);
* full Liger, LoRA dropout 0.05 (the default) and 0, with the frozen vision tower's output
  cached, and a profile of the best eager step;
* generation: the dynamic cache at large batches, and the static cache whose decode step
  generate() compiles, with torch's recompile log on, to tell recompiling from a slow graph.

    python bench/gpu_levers.py --out $OUT --budget 540

Writes gpu_levers.json (and levers_profile_train.txt) under --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from gpu_probe import (  # noqa: E402
    DEV,
    LM_LINEARS,
    TINY,
    VisionCache,
    chat,
    peak_gib,
    qwen3_vl_4b_config,
    reset_peak,
    samples,
    set_dropout,
    sync,
    train_batch,
)

from drawtune.train.tiny_model import build_processor, tokenizer_files_dir  # noqa: E402

T0 = time.time()


def ms_swift_args(batch):
    """ms-swift's inputs: labels cut to the answer suffix plus ``logits_to_keep``."""
    b = dict(batch)
    b.pop("full_labels")
    return b


def pad16(batch):
    """The batch right-padded to a multiple of 16 tokens (float8 matmuls need it)."""
    n = batch["input_ids"].shape[1]
    extra = -n % 16
    if not extra:
        return batch
    out = dict(batch)
    fill = {"input_ids": 151643, "full_labels": -100}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() == 2 and value.shape[1] == n:
            out[key] = torch.nn.functional.pad(value, (0, extra), value=fill.get(key, 0))
    out["labels"] = torch.nn.functional.pad(batch["labels"], (0, extra), value=-100)
    out["logits_to_keep"] = batch["logits_to_keep"] + extra
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench/runs/levers"))
    ap.add_argument("--budget", type=float, default=540)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--dynamic", type=int, nargs="*", default=[256])
    ap.add_argument("--static", type=int, nargs="*", default=[64, 256])
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu"
    res = {"device": name, "torch": torch.__version__, "train": [], "generate": [],
           "command": " ".join(sys.argv)}  # fmt: skip

    def save():
        (out / "gpu_levers.json").write_text(json.dumps(res, indent=2) + "\n")

    def left() -> float:
        return a.budget - (time.time() - T0)

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    proc = build_processor("qwen3_vl", tokenizer_files_dir())
    side = 256 if TINY else a.side
    proc.image_processor.size = {"shortest_edge": 3136, "longest_edge": side * side}
    data = samples(8 if TINY else 48, side)
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
    print(f"[{time.time() - T0:.0f}s] model built", flush=True)

    # ---------------- generation first, before any Liger patch (Triton RMSNorm does not compile)
    def gen(label, b, new=128, **kw):
        if left() < 60:
            print(f"skip {label}: budget", flush=True)
            return
        proc.tokenizer.padding_side = "left"
        rows = [data[i % len(data)] for i in range(b)]
        enc = proc(text=[chat(None)] * b, images=[im for im, _ in rows], padding=True,
                   return_tensors="pt").to(DEV)  # fmt: skip
        row = {"name": label, "batch": b, "new_tokens": new, **kw}
        try:
            with torch.no_grad():
                # a static cache is sized prompt + max_new_tokens: warm up at the timed length,
                # or the timed call compiles again
                warm_new = new if kw.get("cache_implementation") == "static" else 4
                t = time.time()
                model.generate(
                    **enc, max_new_tokens=warm_new, min_new_tokens=warm_new, do_sample=False, **kw
                )
                sync()
                row["first_call_s"] = time.time() - t
                reset_peak()
                t = time.time()
                model.generate(**enc, max_new_tokens=new, min_new_tokens=new, do_sample=False, **kw)
                sync()
                dt = time.time() - t
                t = time.time()
                model.generate(**enc, max_new_tokens=1, min_new_tokens=1, do_sample=False, **kw)
                sync()
                prefill = time.time() - t
            row.update(s=dt, images_per_s=b / dt, prefill_s=prefill,
                       decode_ms_per_token=(dt - prefill) / (new - 1) * 1000,
                       peak_gib=peak_gib())  # fmt: skip
        except torch.OutOfMemoryError:
            row["oom"] = True
        except Exception as e:  # noqa: BLE001 - a compile failure is a result: say why
            row["error"] = f"{type(e).__name__}: {e}"[:600]
        del enc
        reset_peak()
        res["generate"].append(row)
        save()
        print(f"[{time.time() - T0:.0f}s] {json.dumps(row)}", flush=True)

    model.eval()
    for b in (8,) if TINY else a.dynamic:
        gen(f"dynamic-b{b}", b)
    # the static cache: log every recompilation and its reason into the run's output
    rec = out / "levers_recompiles.log"
    handler = logging.FileHandler(rec)
    logging.getLogger("torch._dynamo").addHandler(handler)
    torch._logging.set_logs(recompiles=True, graph_breaks=True)
    for b in (8,) if TINY else a.static:
        gen(f"static-b{b}", b, cache_implementation="static")
    torch._logging.set_logs()
    logging.getLogger("torch._dynamo").removeHandler(handler)
    torch._dynamo.reset()
    model.train()
    proc.tokenizer.padding_side = "right"

    # ---------------- training, ms-swift's loss path
    model.config.use_cache = False
    lcfg = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules=LM_LINEARS)
    model = get_peft_model(model, lcfg)
    for n, p in model.named_parameters():  # ms-swift's --lora_dtype bfloat16
        if "lora_" in n:
            p.data = p.data.to(torch.bfloat16)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    inner = model.base_model.model
    cache = VisionCache(inner.model.visual)
    bsz = 2 if TINY else 8
    batches = [(f"b{bsz}-{i}", train_batch(proc, data, bsz, i * bsz)) for i in range(3)]
    padded = [(f"p{bsz}-{i}", pad16(b)) for i, (_, b) in enumerate(batches)]
    res["tokens_per_sample"] = batches[0][1]["input_ids"].shape[1]

    def run(label, dropout=0.0, cached=False, warm=2, steps=a.steps, need=45, data=None):
        data = data or batches
        if left() < need:
            print(f"skip {label}: budget", flush=True)
            return None
        set_dropout(model, dropout)
        cache.on = cached
        row = {"name": label, "batch": bsz, "dropout": dropout, "cached_vision": cached}
        try:
            sync()
            reset_peak()
            times, losses = [], []
            for i in range(warm + steps):
                tag, batch = data[i % len(data)]
                cache.tag = tag
                t = time.perf_counter()
                loss = model(**ms_swift_args(batch)).loss
                loss.backward()
                params = [p for p in model.parameters() if p.requires_grad]
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync()
                (times if i >= warm else row.setdefault("warm_s", [])).append(
                    time.perf_counter() - t
                )
                losses.append(loss.item())
            times.sort()
            dt = times[len(times) // 2]
            row.update(s_per_step=dt, samples_per_s=bsz / dt, peak_gib=peak_gib(), loss=losses)
        except torch.OutOfMemoryError:
            row["oom"] = True
        except Exception as e:  # noqa: BLE001 - a compile failure is a result: say why
            row["error"] = f"{type(e).__name__}: {e}"[:600]
        opt.zero_grad(set_to_none=True)
        reset_peak()
        res["train"].append(row)
        save()
        print(f"[{time.time() - T0:.0f}s] {json.dumps(row)}", flush=True)
        return row

    try:
        from liger_kernel.transformers import apply_liger_kernel_to_qwen3_vl
    except ImportError as e:  # the CPU smoke test (PROBE_TINY=1) without liger-kernel
        print(f"no liger: {e}", flush=True)

        def apply_liger_kernel_to_qwen3_vl(**kw):
            return None

    try:  # ms-swift's fix (TrainArguments._patch_liger_kernel): the kept suffix made contiguous
        import liger_kernel.transformers.model.qwen3_vl as lq

        orig_loss = lq.LigerForCausalLMLoss

        def contiguous_loss(hidden_states, *args, **kw):
            return orig_loss(hidden_states.contiguous(), *args, **kw)

        lq.LigerForCausalLMLoss = contiguous_loss
    except ImportError:
        pass
    # Phase A: Liger's fused loss only, so that Inductor can compile the decoder layers
    apply_liger_kernel_to_qwen3_vl(
        rope=False, rms_norm=False, swiglu=False, fused_linear_cross_entropy=True, model=inner
    )
    run("flce-eager-drop0")
    layers = inner.model.language_model.layers
    for layer in layers:
        layer.compile()
    run("flce-compiled-layers-drop0", warm=3, need=150)
    run("flce-compiled-layers-drop0.05", dropout=0.05, warm=2, need=120)
    run("flce-compiled-layers-drop0-pad16", warm=2, need=120, data=padded)
    try:
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        torch._dynamo.reset()
        fcfg = Float8LinearConfig.from_recipe_name("rowwise")

        def base_linear(mod, fqn):  # the frozen base matmuls of the language model
            return fqn.endswith("base_layer") and "language_model" in fqn

        originals = [
            (parent, child, getattr(parent, child))
            for fqn, parent in inner.named_modules()
            for child in ("base_layer",)
            if hasattr(parent, child) and base_linear(None, f"{fqn}.{child}")
        ]
        convert_to_float8_training(inner, config=fcfg, module_filter_fn=base_linear)
        res["float8_linears"] = sum(type(m).__name__ == "Float8Linear" for m in inner.modules())
        run("flce-compiled-layers-float8-drop0", warm=3, need=150, data=padded)
        for parent, child, mod in originals:  # back to the bf16 base matmuls
            setattr(parent, child, mod)
    except Exception as e:  # noqa: BLE001 - no torchao or no float8 on this GPU: say so
        res["float8_error"] = f"{type(e).__name__}: {e}"[:600]
        print(res["float8_error"], flush=True)
    save()
    # back to eager decoder layers for phase B
    torch._dynamo.reset()
    for layer in layers:
        layer._compiled_call_impl = None

    # Phase B: full Liger (RMSNorm, RoPE), eager
    apply_liger_kernel_to_qwen3_vl(
        rope=True, rms_norm=True, swiglu=False, fused_linear_cross_entropy=True, model=inner
    )
    run("liger-drop0.05", dropout=0.05)
    best = run("liger-drop0")
    run("liger-drop0-cachedvision", cached=True)
    if best and "s_per_step" in best and left() > 40:
        from torch.profiler import ProfilerActivity, profile

        set_dropout(model, 0.0)
        cache.on = False
        b = batches[0][1]
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            model(**ms_swift_args(b)).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=45)
        (out / "levers_profile_train.txt").write_text(table)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15), flush=True)
    save()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
