"""ms-swift's checkpoints of one training run: which are complete, where an interrupted run
resumes, what the trained adapter keeps of the last one, the lock that lets only one trainer
use a run folder, and the settings an adapter records so that it is checked before it is used."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from pathlib import Path

from ..errors import StageError

log = logging.getLogger("drawtune")
LOCK = "drawtune-run.lock"  # in the run folder; kept when the folder is cleared
LOCK_WAIT_S = 30.0  # a trainer being stopped (its rule's Snakemake died) releases it in seconds
ADAPTER_RECORD = "drawtune-adapter.json"  # what an adapter was trained with

CHECKPOINT_RE = re.compile(r"checkpoint-(\d+)$")
FINGERPRINT = "drawtune-run.json"
# What a checkpoint holds only to continue training; the adapter is the rest.
TRAINING_STATE = (
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    "training_args.bin",
    "global_step*",  # DeepSpeed's sharded optimizer state
    "zero_to_fp32.py",
    "latest",
)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints ms-swift finished writing (``trainer_state.json`` is written last), by
    step; a checkpoint cut off by preemption is skipped."""
    found = []
    for p in Path(run_dir).glob("checkpoint-*"):
        m = CHECKPOINT_RE.search(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def last_checkpoint(run_dir: Path) -> Path:
    """The last complete checkpoint of a finished run (what the adapter is copied from)."""
    ckpts = complete_checkpoints(run_dir)
    if not ckpts:
        raise StageError(f"swift sft wrote no complete checkpoint under {run_dir}")
    return ckpts[-1]


def resume_checkpoint(run_dir: Path, fingerprint: dict) -> Path | None:
    """The last complete checkpoint of an interrupted run with the same settings, or None
    (nothing to resume, or the run was made with other settings and must start over)."""
    if recorded_fingerprint(run_dir) != fingerprint:
        return None
    ckpts = complete_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def recorded_fingerprint(run_dir: Path) -> dict | None:
    """The settings the run folder's checkpoints were made with (None: none recorded)."""
    f = Path(run_dir) / FINGERPRINT
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def clear_run_dir(run_dir: Path) -> None:
    """Empty the run folder for a fresh start, keeping its lock (held by this trainer)."""
    run_dir = Path(run_dir)
    for entry in run_dir.iterdir() if run_dir.is_dir() else ():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextlib.contextmanager
def run_lock(run_dir: Path, wait_s: float = LOCK_WAIT_S):
    """Hold the run folder for one trainer (an exclusive ``flock`` on its lock file, released
    when the process ends, however it ends). Another trainer holding it for longer than
    ``wait_s`` is a StageError naming it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    fh = open(path, "a+")  # noqa: SIM115 - held open for the whole run
    deadline = time.monotonic() + wait_s
    waited = False
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise StageError(
                        f"run folder {run_dir} is in use by another trainer ({holder}; lock "
                        f"{path}): only one trainer may use a run folder. Wait for it to end or "
                        "stop it, then rerun"
                    ) from None
                if not waited:
                    log.info("waiting %.0f s at most for %s (%s)", wait_s, path, holder)
                    waited = True
                time.sleep(0.5)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n")
        fh.flush()
        yield path
    finally:
        fh.close()


def adapter_settings(base: str, family: str, resize: dict, train: dict) -> dict:
    """What an adapter is trained with as the config says it (the base model, family, resize
    bounds and the experiment's keys): recorded in the adapter, compared before it is merged."""
    return {
        "base": str(base),
        "family": family,
        "min_pixels": resize["min_pixels"],
        "max_pixels": resize["max_pixels"],
        "train": train,
    }


def write_adapter_record(adapter_dir: Path, settings: dict | None, fingerprint: dict) -> None:
    record = {"settings": settings, "fingerprint": fingerprint}
    text = json.dumps(record, indent=1, sort_keys=True)
    (Path(adapter_dir) / ADAPTER_RECORD).write_text(text + "\n")


def _differences(recorded, expected, where: str = "") -> list[str]:
    if isinstance(recorded, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(recorded) | set(expected)):
            sub = f"{where}.{key}" if where else str(key)
            out += _differences(recorded.get(key), expected.get(key), sub)
        return out
    return [] if recorded == expected else [f"{where}: {recorded!r} (config: {expected!r})"]


def adapter_mismatch(adapter_dir: Path, expected: dict | None) -> str | None:
    """How the settings an adapter records differ from ``expected`` (the current config's,
    :func:`adapter_settings`), as one line; None when they agree, or when there is no adapter
    or no record (an adapter made before records were written is taken as it is)."""
    f = Path(adapter_dir) / ADAPTER_RECORD
    if expected is None or not f.is_file():
        return None
    try:
        recorded = json.loads(f.read_text()).get("settings")
    except (OSError, json.JSONDecodeError, AttributeError):
        return f"{f} is not a readable adapter record"
    if recorded is None:
        return None
    diff = _differences(recorded, json.loads(json.dumps(expected)))
    more = f"; and {len(diff) - 3} more" if len(diff) > 3 else ""
    return "; ".join(diff[:3]) + more if diff else None


def check_adapter(adapter_dir: Path, expected: dict | None) -> None:
    """StageError when the adapter records other settings than ``expected``: it was trained
    for another config, for instance by a trainer left over from an earlier run."""
    diff = adapter_mismatch(adapter_dir, expected)
    if diff:
        raise StageError(
            f"adapter {adapter_dir} was trained with other settings than the config's: {diff}. "
            f"It is not used: delete it (rm -rf {adapter_dir}) and rerun to train it again"
        )


def write_fingerprint(run_dir: Path, fingerprint: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / FINGERPRINT).write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
