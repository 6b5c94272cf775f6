"""ms-swift's checkpoints of one training run: which are complete, where an interrupted run
resumes, and what the trained adapter keeps of the last one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import StageError

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
    run_dir = Path(run_dir)
    f = run_dir / FINGERPRINT
    if not f.is_file():
        return None
    try:
        if json.loads(f.read_text()) != fingerprint:
            return None
    except json.JSONDecodeError:
        return None
    ckpts = complete_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def write_fingerprint(run_dir: Path, fingerprint: dict) -> None:
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / FINGERPRINT).write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
