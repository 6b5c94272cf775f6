"""The workflow's stages as plain functions over files (the scripts in ``scripts/`` call these)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import estimate, gpu_plan, launch, swift_cmd
from .convert import dump_jsonl, load_jsonl, manifest_row, swift_row, truth_coco, vision_factor
from .coords import ResizeSpec, from_model, model_frame
from .metrics import coco_metrics
from .parse import parse_answer
from .progress import Relay
from .records import InputError, Rules
from .split import SPLITS, split_records

log = logging.getLogger("drawtune")
PLAN_FILE = "drawtune_plan.json"  # the training settings chosen for the job, beside the adapter


class StageError(Exception):
    """A stage cannot finish; the message is meant for the user (no traceback needed)."""


def write_json(obj, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- validate
def validate_dataset(
    ds: dict,
    rules: Rules,
    spec: ResizeSpec,
    max_rejected_fraction: float,
    records_out,
    rejects_out,
    summary_out,
    name: str = "",
) -> dict:
    """Read one dataset (``format``: coco|swift), write records, rejects and counts."""
    from .formats import read_dataset
    from .images import STATS

    before = dict(STATS)
    try:
        res = read_dataset(ds, rules, spec)
    except InputError as e:
        raise StageError(str(e)) from None
    log.info(
        "images decoded: %d of %d records (the rest came from resources/cache)",
        STATS["decoded"] - before["decoded"],
        res.n_read,
    )
    dump_jsonl(res.records, records_out)
    dump_jsonl(res.rejects, rejects_out)
    summary = {
        "dataset": name,
        "read": res.n_read,
        "converted": len(res.records),
        "rejected": len(res.rejects),
    }
    write_json(summary, summary_out)
    for r in res.rejects:
        log.warning("rejected %s %s [%s]: %s", r["file"], r["record"], r["field"], r["reason"])
    log.info(
        "dataset %s: read %d, kept %d, rejected %d",
        name,
        summary["read"],
        summary["converted"],
        summary["rejected"],
    )
    if ds.get("on_error") == "fail" and res.rejects:
        raise StageError(
            f"dataset {name}: {len(res.rejects)} of {res.n_read} records rejected and on_error "
            f"is fail; see {rejects_out}"
        )
    if res.n_read == 0:
        raise StageError(f"dataset {name}: {ds['annotations']} holds no records")
    frac = len(res.rejects) / res.n_read
    if frac > max_rejected_fraction:
        raise StageError(
            f"dataset {name}: {len(res.rejects)} of {res.n_read} records rejected "
            f"({frac:.0%} > max_rejected_fraction {max_rejected_fraction:.0%}); see {rejects_out}"
        )
    return summary


# --------------------------------------------------------------------------- split
def split_dataset(
    record_files: list,
    classes: list[str],
    val: float,
    test: float,
    salt: str,
    outputs: dict,
    truth_outputs: dict,
    rejects_out,
    summary_out,
) -> dict:
    records = []
    for f in record_files:
        records.extend(load_jsonl(f))
    splits, rejects = split_records(records, val, test, salt)
    for s in SPLITS:
        dump_jsonl(splits[s], outputs[s])
        if truth_outputs:  # detection: COCO ground truth per split
            write_json(truth_coco(splits[s], classes), truth_outputs[s])
    dump_jsonl(rejects, rejects_out)
    summary = {s: len(splits[s]) for s in SPLITS}
    summary["duplicates_rejected"] = len(rejects)
    summary["read"] = len(records)
    write_json(summary, summary_out)
    if not splits["train"]:
        raise StageError("the train split is empty: add drawings or lower split.val/split.test")
    if not splits["test"]:
        raise StageError("the test split is empty: add drawings or raise split.test")
    log.info("split: %s", summary)
    return summary


def split_classify(
    records_file, val: float, test: float, salt: str, outputs: dict, rejects_out, summary_out
) -> dict:
    """Stable splits of one classification dataset: the detection split without COCO truth."""
    return split_dataset(
        [records_file], [], val, test, salt, outputs, None, rejects_out, summary_out
    )


# --------------------------------------------------------------------------- convert
def convert_split(
    records_file,
    family: str,
    prompt: str,
    spec: ResizeSpec,
    jsonl_out,
    manifest_out,
    task: str = "detect",
) -> int:
    """One split as ms-swift rows: boxes in the family's coordinates, or the class name."""
    records = load_jsonl(records_file)
    if task == "classify":
        from .classify import swift_row as class_row

        rows = [class_row(r, prompt) for r in records]
    else:
        rows = [swift_row(r, family, prompt, spec) for r in records]
    dump_jsonl(rows, jsonl_out)
    dump_jsonl([manifest_row(r, family, spec) for r in records], manifest_out)
    return len(records)


# --------------------------------------------------------------------------- swift runs
def resolve_command(cmd: list[str]) -> list[str]:
    """``cmd`` with its program found on PATH or beside this Python (see ``_executable``)."""
    return [_executable(cmd[0]), *cmd[1:]]


def _executable(name: str) -> str:
    """``name`` from PATH, else beside the running Python (an un-activated virtualenv)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    raise StageError(f"{name!r} is not installed: run `make install` or put it on PATH")


def run_logged(cmd: list[str], env: dict, log_path, label: str | None = None, environ=None) -> None:
    """Run ``cmd`` with ``env`` on top of ``environ`` (default: this process's environment),
    appending its output to ``log_path`` and relaying its progress bars to stderr
    (drawtune.progress); fail with the log's tail."""
    label = label or " ".join(cmd[:2])
    cmd = resolve_command(cmd)
    if "--attn_impl" in cmd:
        log.info("attention implementation: %s", cmd[cmd.index("--attn_impl") + 1])
    log.info("running: %s", " ".join(cmd))
    log.info("environment: %s", " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    relay = Relay(label)
    child = swift_cmd.child_env(env) if environ is None else {**environ, **env}
    with open(log_path, "ab") as f:
        proc = subprocess.Popen(cmd, env=child, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            f.write(chunk)
            f.flush()
            relay.feed(chunk.decode(errors="replace"))
        proc.wait()
        relay.close()
    if proc.returncode != 0:
        tail = Path(log_path).read_text(errors="replace").splitlines()[-15:]
        raise StageError(
            f"{Path(cmd[0]).name} {cmd[1]} exited with {proc.returncode}:\n" + "\n".join(tail)
        )


_TRAINING_STATE = (
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "global_step*",  # DeepSpeed's sharded optimizer state
    "zero_to_fp32.py",
    "latest",
)


def train(
    *,
    family,
    base,
    train_jsonl,
    val_jsonl,
    train_cfg,
    spec: ResizeSpec,
    run_dir,
    adapter_out,
    logging_out,
    tensorboard_out,
    log_path,
    device="cpu",
    environ=None,
    manifest_jsonl=None,
    telemetry_out=None,
) -> None:
    """``swift sft`` for one experiment, on every GPU and node of the job (``environ``: the
    job's environment, default ``os.environ``), resumed from the last complete checkpoint of an
    interrupted run with the same settings."""
    run_dir = Path(run_dir)
    val = val_jsonl if val_jsonl and load_jsonl(val_jsonl) else None
    environ = launch.job_environ(os.environ if environ is None else environ)
    topo = launch.topology(environ)
    choice = train_cfg.get("deepspeed", "auto")
    planned = launch.launcher_env(topo)
    log.info(
        "launch: nodes=%d gpus_per_node=%d world_size=%d deepspeed=%s attention=%s %s",
        topo.nnodes,
        topo.gpus_per_node,
        topo.world_size,
        launch.deepspeed_stage(choice, topo, "cuda") or "none",
        swift_cmd.attn_impl(device),
        " ".join(f"{k}={v}" for k, v in sorted(planned.items())),
    )
    if device == "cpu" and topo.distributed:
        log.warning("the job has GPUs but torch sees none: training on CPU in one process")
        topo = launch.Topology(nnodes=1, gpus_per_node=0)
    deepspeed = launch.deepspeed_stage(choice, topo, device)
    plan = plan_train(train_cfg, base, train_jsonl, manifest_jsonl, family, device, topo)
    while True:
        start = Path(log_path).stat().st_size if Path(log_path).exists() else 0
        try:
            cfg = _train_once(
                plan, train_cfg, family, base, train_jsonl, val, run_dir, spec, device, environ,
                topo, deepspeed, log_path,
            )  # fmt: skip
            break
        except StageError:
            nxt = gpu_plan.fallback(plan, train_cfg)
            with open(log_path, "rb") as fh:
                fh.seek(start)
                attempt = fh.read().decode(errors="replace")
            if nxt is None or not gpu_plan.is_out_of_memory(attempt):
                raise
            log.warning("out of memory with %s; retry with %s", _plan_line(plan), _plan_line(nxt))
            shutil.rmtree(run_dir, ignore_errors=True)
            plan = nxt
    ckpts = launch.complete_checkpoints(run_dir)
    if not ckpts:
        raise StageError(f"swift sft wrote no complete checkpoint under {run_dir}")
    ckpt = ckpts[-1]
    adapter_out = Path(adapter_out)
    if adapter_out.exists():
        shutil.rmtree(adapter_out)
    shutil.copytree(ckpt, adapter_out, ignore=shutil.ignore_patterns(*_TRAINING_STATE))
    write_json(plan.as_dict(), adapter_out / PLAN_FILE)
    shutil.copyfile(run_dir / "logging.jsonl", logging_out)
    tb = Path(tensorboard_out)
    if tb.exists():
        shutil.rmtree(tb)
    src = run_dir / "runs"
    shutil.copytree(src, tb) if src.is_dir() else tb.mkdir(parents=True)
    if telemetry_out:
        write_telemetry(
            logging_out, train_jsonl, manifest_jsonl, family, base, cfg, device,
            telemetry_out, log_path, gpus=topo.world_size, settings=plan.as_dict(),
        )  # fmt: skip


def _plan_line(plan: gpu_plan.TrainPlan) -> str:
    return (
        f"micro-batch {plan.batch_size} x accumulation {plan.grad_accum}, gradient checkpointing "
        f"{'on' if plan.gradient_checkpointing else 'off'}"
    )


def plan_train(train_cfg, base, train_jsonl, manifest_jsonl, family, device, topo):
    """The job's training settings (drawtune.gpu_plan), from the model's shape, the longest
    sample and the GPU; logged, and kept beside the adapter as ``drawtune_plan.json``."""
    shape = _shape(base)
    tokens = train_cfg.get("max_length", 4096)
    if manifest_jsonl and Path(manifest_jsonl).is_file():
        manifest = {m["image"]: m for m in load_jsonl(manifest_jsonl)}
        rows = load_jsonl(train_jsonl)
        longest = max((estimate.sample_tokens(r, manifest, family) for r in rows), default=1)
        tokens = min(tokens, longest)
    plan = gpu_plan.plan_training(
        train_cfg,
        shape=shape,
        tokens=tokens,
        device=device,
        gpu_gib=gpu_plan.gpu_memory_gib(device),
        world_size=topo.world_size,
        cpus=gpu_plan.cpu_count(),
        liger_ok=gpu_plan.liger_available(),
    )
    log.info(
        "plan: %s, %d loader workers, liger %s, LoRA dtype %s; predicted peak %s GiB of %s GiB "
        "(%d tokens in the longest sample; %s)",
        _plan_line(plan), plan.dataloader_workers, "on" if plan.liger else "off",
        plan.lora_dtype, plan.predicted_gib, plan.gpu_gib, tokens, plan.reason,
    )  # fmt: skip
    return plan


def _train_once(
    plan, train_cfg, family, base, train_jsonl, val, run_dir, spec, device, environ, topo,
    deepspeed, log_path,
):  # fmt: skip
    """One ``swift sft`` with ``plan``'s settings; returns the resolved training block."""
    cfg = plan.apply(train_cfg)
    cmd = swift_cmd.sft_command(
        family=family,
        base=base,
        train=str(train_jsonl),
        val=val,
        output_dir=str(run_dir),
        train_cfg=cfg,
        device=device,
        deepspeed=deepspeed,
    )
    env = swift_cmd.swift_env(family, spec.min_pixels, spec.max_pixels, base, device)
    # An interrupted run with the same command resumes from its last complete checkpoint;
    # anything else starts over in a clean folder. The rendezvous address and port are left out:
    # they change from one SLURM job to the next.
    fingerprint = {"command": cmd, "environment": env}
    env = {**env, **launch.launcher_env(topo)}
    ckpt = launch.resume_checkpoint(run_dir, fingerprint) if train_cfg.get("resume", True) else None
    if ckpt is None:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        launch.write_fingerprint(run_dir, fingerprint)
    else:
        log.info("resuming from %s (an earlier run of this experiment was interrupted)", ckpt)
        cmd = cmd + swift_cmd.resume_args(str(ckpt))
    # several nodes: srun from this job step, with the step's SLURM variables dropped
    srun_env = launch.srun_environ(environ) if topo.nnodes > 1 else None
    run_logged(
        launch.node_command(cmd, topo),
        env,
        log_path,
        label=f"swift sft {run_dir.parent.name}",
        environ=srun_env,
    )
    return cfg


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
    """Per-step telemetry (drawtune.telemetry) as JSONL, and as a table appended to the log.
    ``gpus``: the training's processes (train passes its topology's world size; the launcher
    variables are set for swift's process only, not for this one)."""
    from . import estimate, telemetry

    samples, epoch_tokens = estimate.training_tokens(train_jsonl, manifest_jsonl, family)
    try:
        params = estimate.model_parameters(str(base))
    except estimate.EstimateError:
        params = 0  # a hub id without a size in its name: no MFU
    name = None
    if device != "cpu":
        import torch

        name = torch.cuda.get_device_name(0)
    if gpus is None:
        gpus = int(os.environ.get("NPROC_PER_NODE", "1")) * int(os.environ.get("NNODES", "1"))
    t = train_cfg
    rows = telemetry.steps(
        load_jsonl(logging_jsonl),
        samples_per_step=t["batch_size"] * t["grad_accum"] * gpus,
        tokens_per_sample=epoch_tokens / max(samples, 1),
        params=params,
        tuner=t["tuner"],
        peak=telemetry.peak_tflops(name) if params else None,
        gpus=gpus,
        device=name or "cpu",
    )
    if rows and settings:
        rows[0]["settings"] = settings  # what drawtune.gpu_plan chose; the report shows it
    dump_jsonl(rows, out)
    with open(log_path, "a") as fh:
        fh.write(f"\ntelemetry ({name or 'cpu'}, {gpus} GPU(s), {params:,} parameters, ")
        fh.write(f"{epoch_tokens / max(samples, 1):.0f} tokens a sample)\n")
        fh.write(telemetry.table(rows) + "\n")
    return rows


def merge(*, family, base, adapter, tuner, spec: ResizeSpec, merged_out, log_path, device="cpu"):
    merged_out = Path(merged_out)
    if merged_out.exists():
        shutil.rmtree(merged_out)  # swift export silently skips an existing output folder
    if tuner == "full":
        shutil.copytree(adapter, merged_out, ignore=shutil.ignore_patterns("trainer_state.json"))
        log.info("full fine-tuning: the checkpoint is the merged model; copied %s", adapter)
        return
    cmd = swift_cmd.export_command(
        family=family, base=base, adapter=str(adapter), output_dir=str(merged_out), device=device
    )
    run_logged(
        cmd, swift_cmd.swift_env(family, spec.min_pixels, spec.max_pixels, base, device), log_path
    )


def predict(
    *,
    family,
    model,
    dataset,
    spec: ResizeSpec,
    batch_size,
    max_new_tokens,
    result_out,
    log_path,
    device="cpu",
) -> None:
    result_out = Path(result_out)
    result_out.unlink(missing_ok=True)  # swift infer appends to an existing result file
    rows = load_jsonl(dataset)
    batch_size, why = plan_predict_batch(
        batch_size, model, rows, family, spec, max_new_tokens, device
    )
    log.info("prediction batch: %d (%s)", batch_size, why)
    cmd = swift_cmd.infer_command(
        family=family,
        model=str(model),
        dataset=str(dataset),
        result_path=str(result_out),
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        device=device,
    )
    run_logged(
        cmd,
        swift_cmd.swift_env(family, spec.min_pixels, spec.max_pixels, str(model), device),
        log_path,
        label=f"swift infer {result_out.parent.name}/{result_out.stem}",
    )
    n_in, n_out = len(rows), len(load_jsonl(result_out))
    if n_in != n_out:
        raise StageError(f"swift infer returned {n_out} rows for {n_in} inputs in {dataset}")


def plan_predict_batch(batch_size, model, rows, family, spec, max_new_tokens, device):
    """(batch, reason): config's integer, or for ``auto`` the largest batch whose key/value
    cache fits the GPU (drawtune.gpu_plan), from the model's shape and the longest prompt."""
    if batch_size != "auto":
        return int(batch_size), "batch_size from config"
    shape = _shape(model)
    f2 = vision_factor(family) ** 2
    prompt = max((_prompt_tokens(r) for r in rows[:32]), default=0)
    return gpu_plan.plan_predict(
        batch_size,
        shape=shape,
        tokens=prompt + spec.max_pixels // f2 + estimate.TEMPLATE_TOKENS,
        new_tokens=max_new_tokens,
        n_inputs=len(rows),
        device=device,
        gpu_gib=gpu_plan.gpu_memory_gib(device),
    )


def _shape(model) -> gpu_plan.Shape | None:
    """The memory model's view of a local model directory; None for a hub id or a folder
    without safetensors (the plans then take their safe choice)."""
    if not Path(str(model)).is_dir():
        return None
    try:
        return gpu_plan.model_shape(model, estimate.safetensors_parameters(Path(model)))
    except estimate.EstimateError:
        return None


def _prompt_tokens(row: dict) -> int:
    return sum(estimate.text_tokens(m["content"]) for m in row["messages"] if m["role"] == "user")


# --------------------------------------------------------------------------- score
def _row_image(row: dict) -> str:
    img = (row.get("images") or [None])[0]
    return img.get("path") if isinstance(img, dict) else img


def match_results(rows: list[dict], truth: dict) -> list[tuple[dict, dict | None]]:
    """Pair each truth image with its result row: by path, then by unique file name."""
    by_path = {}
    by_name: dict[str, list] = {}
    for r in rows:
        p = _row_image(r)
        if p is None:
            continue
        by_path.setdefault(str(p), r)
        by_name.setdefault(Path(str(p)).name, []).append(r)
    # rows taken by an exact path are never offered to another image by name
    taken = {id(by_path[i["file_name"]]) for i in truth["images"] if i["file_name"] in by_path}
    pairs = []
    for img in truth["images"]:
        r = by_path.get(img["file_name"])
        if r is None:
            cands = by_name.get(Path(img["file_name"]).name, [])
            r = cands[0] if len(cands) == 1 and id(cands[0]) not in taken else None
        pairs.append((img, r))
    return pairs


def score(
    rows: list[dict], truth: dict, family: str, spec: ResizeSpec, manifest: list[dict] | None = None
):
    """Parse answers, map boxes to original pixels, compute metrics; return (metrics, details)."""
    frames = {m["image"]: (m["frame_width"], m["frame_height"]) for m in manifest or []}
    preds, details, n_bad = [], [], 0
    for img, row in match_results(rows, truth):
        w, h = img["width"], img["height"]
        expect = model_frame(family, w, h, spec)
        if img["file_name"] in frames and tuple(frames[img["file_name"]]) != tuple(expect):
            raise StageError(
                f"{img['file_name']}: manifest frame {frames[img['file_name']]} differs from "
                f"{expect} recomputed with the current resize settings"
            )
        text = row.get("response") if row else None
        parsed = parse_answer(text)
        if not parsed.ok:
            n_bad += 1
        boxes = []
        for label, box in parsed.boxes:
            px = from_model(box, family, w, h, spec)
            if px[2] - px[0] <= 0 or px[3] - px[1] <= 0:
                continue
            preds.append({"image_id": img["id"], "label": label, "bbox": px})
            boxes.append({"label": label, "bbox": [round(v, 2) for v in px]})
        details.append(
            {
                "image": img["file_name"],
                "matched": row is not None,
                "parsed": parsed.ok,
                "salvaged": parsed.salvaged,
                "boxes": boxes,
                "response": text,
            }
        )
    metrics = coco_metrics(truth, preds, n_unparseable=n_bad)
    return metrics, details


def main_guard(func):
    """Run a stage; user-facing errors become one clear line and exit 1, not a traceback."""
    try:
        return func()
    except StageError as e:
        log.error("%s", e)
        sys.exit(1)
