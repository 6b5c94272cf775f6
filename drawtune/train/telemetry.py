"""Training telemetry per logging step: loss, learning rate, grad norm, samples/s, tokens/s,
model FLOPs utilisation (MFU) and peak GPU memory, from ms-swift's ``logging.jsonl``.

ms-swift logs ``train_speed(s/it)`` as the mean since the start and ``memory(GiB)`` on GPUs; the
rates here are per interval between logging steps. Tokens per sample come from the converted data
(text, template and visual tokens, see drawtune.train.estimate); MFU counts 6 (full) or 4 (LoRA)
FLOPs per parameter and token against the GPU's dense bf16 peak.
"""

from __future__ import annotations

import os

from ..jsonio import dump_jsonl, load_jsonl
from . import estimate
from .device import gpu_name
from .estimate import FLOPS_PER_PARAM_TOKEN, PEAK_TFLOPS, EstimateError, gpu_kind


def _step(row: dict) -> int | None:
    s = row.get("global_step/max_steps")
    return int(str(s).split("/")[0]) if s is not None else None


def _kind(row: dict) -> str:
    if "train_runtime" in row:
        return "summary"
    return "eval" if any(k.startswith("eval_") for k in row) else "train"


def last_of_each_step(rows: list[dict]) -> list[dict]:
    """ms-swift's logging rows with a resumed run's repeats dropped: a run resumed from the
    checkpoint of step k logs steps k+1... again, after the interrupted run had logged some of
    them; the rows of the run that went on are kept (the last of each step and kind)."""
    out: list[dict] = []
    for r in rows:
        step, kind = _step(r), _kind(r)
        if step is not None:
            out = [o for o in out if _kind(o) != kind or (_step(o) or 0) < step]
        out.append(r)
    return out


def peak_tflops(device_name: str | None) -> float | None:
    """Dense bf16 peak of a CUDA device name, None for CPU or an unknown GPU."""
    if not device_name:
        return None
    try:
        return PEAK_TFLOPS[gpu_kind(device_name)]
    except EstimateError:
        return None


def steps(
    logging_rows: list[dict],
    *,
    samples_per_step: int,
    tokens_per_sample: float,
    params: int,
    tuner: str,
    peak: float | None,
    gpus: int = 1,
    device: str = "cpu",
) -> list[dict]:
    """One row per training logging step (evaluation rows are skipped)."""
    out, prev_step, prev_s = [], 0, 0.0
    for r in logging_rows:
        step = _step(r)
        if step is None or "loss" not in r or "train_speed(s/it)" not in r:
            continue
        seconds = float(r["train_speed(s/it)"]) * step  # mean s/it since start x steps
        dt, ds = seconds - prev_s, step - prev_step
        sps = samples_per_step * ds / dt if dt > 0 and ds > 0 else None
        tps = sps * tokens_per_sample if sps else None
        mfu = None
        if tps and peak:
            mfu = tps * FLOPS_PER_PARAM_TOKEN[tuner] * params / (peak * 1e12 * gpus)
        out.append(
            {
                "step": step,
                "loss": r.get("loss"),
                "learning_rate": r.get("learning_rate"),
                "grad_norm": r.get("grad_norm"),
                "samples_per_s": None if sps is None else round(sps, 3),
                "tokens_per_s": None if tps is None else round(tps, 1),
                "mfu": None if mfu is None else round(mfu, 4),
                "peak_memory_gib": r.get("memory(GiB)"),
                "elapsed_s": round(seconds, 1),
                "device": device,
                "gpus": gpus,
                "eta": r.get("remaining_time"),
            }
        )
        prev_step, prev_s = step, seconds
    return out


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    """The telemetry as a fixed-width table for the training log."""
    lines = [
        f"{'step':>6}{'loss':>9}{'lr':>11}{'grad':>8}{'smp/s':>9}{'tok/s':>10}{'MFU':>7}"
        f"{'GiB':>7}{'ETA':>10}"
    ]
    for r in rows:
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(
            f"{r['step']:>6}{_fmt(r['loss'], '.4f'):>9}{_fmt(r['learning_rate'], '.2e'):>11}"
            f"{_fmt(r['grad_norm'], '.2f'):>8}{_fmt(r['samples_per_s'], '.2f'):>9}"
            f"{_fmt(r['tokens_per_s'], ',.0f'):>10}{mfu:>7}"
            f"{_fmt(r['peak_memory_gib'], '.1f'):>7}{(r['eta'] or '-'):>10}"
        )
    return "\n".join(lines)


def write_telemetry(
    logging_jsonl,
    train_jsonl,
    manifest_jsonl,
    family,
    base,
    train_cfg,
    device,
    out,
    log_path,
    gpus=None,
    settings=None,
) -> list[dict]:
    """Per-step telemetry (:func:`steps`) as JSONL, and as a table appended to the log.
    ``gpus``: the training's processes (train passes its topology's world size; the launcher
    variables are set for swift's process only, not for this one)."""
    samples, epoch_tokens = estimate.training_tokens(train_jsonl, manifest_jsonl, family)
    try:
        params = estimate.model_parameters(str(base))
    except estimate.EstimateError:
        params = 0  # a hub id without a size in its name: no MFU
    name = gpu_name(device)
    if gpus is None:
        gpus = int(os.environ.get("NPROC_PER_NODE", "1")) * int(os.environ.get("NNODES", "1"))
    t = train_cfg
    rows = steps(
        load_jsonl(logging_jsonl),
        samples_per_step=t["batch_size"] * t["grad_accum"] * gpus,
        tokens_per_sample=epoch_tokens / max(samples, 1),
        params=params,
        tuner=t["tuner"],
        peak=peak_tflops(name) if params else None,
        gpus=gpus,
        device=name or "cpu",
    )
    if rows and settings:
        rows[0]["settings"] = settings  # what drawtune.train.gpu_plan chose; the report shows it
    dump_jsonl(rows, out)
    with open(log_path, "a") as fh:
        fh.write(f"\ntelemetry ({name or 'cpu'}, {gpus} GPU(s), {params:,} parameters, ")
        fh.write(f"{epoch_tokens / max(samples, 1):.0f} tokens a sample)\n")
        fh.write(table(rows) + "\n")
    return rows
