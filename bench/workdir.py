"""What the bench scripts share: a fresh copy of the workflow to run in, the GPU's name, and
the seconds Snakemake's benchmark files recorded."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("Snakefile", "rules", "scripts", "config", "report", "envs", "profiles")


def copy_workflow(wd: Path) -> Path:
    """``wd`` emptied and filled with the workflow's own files (not results or resources)."""
    if wd.exists():
        shutil.rmtree(wd)
    wd.mkdir(parents=True)
    for p in PARTS:
        src = ROOT / p
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, wd / p)
    return wd


def gpu_name() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - a bench figure's label, never a failure
        return "unknown"


def bench_seconds(wd: Path, pattern: str) -> float:
    """Seconds in every Snakemake benchmark file under ``wd`` matching ``pattern``."""
    total = 0.0
    for f in wd.glob(pattern):
        rows = list(csv.DictReader(f.open(), delimiter="\t"))
        total += sum(float(r["s"]) for r in rows)
    return total
