"""Shared fixtures of tests/unit and tests/workflow: a copy of the workflow in a temporary
folder, run once on tiny data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# tests/support: the SLURM cluster, the Vertex stand-in and the GCS emulator helpers
sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "report", "envs", "profiles")
BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--profile", "profiles/local", "--cores", "2", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def planned_jobs(workdir: Path, *args: str) -> list[str]:
    """Rule names a dry run would execute (one entry per job)."""
    out = snakemake(workdir, "-n", *args).stdout
    return [
        line.split()[-1].rstrip(":")
        for line in out.splitlines()
        if line.startswith(("rule ", "localrule ")) and line.rstrip().endswith(":")
    ]


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        else:
            shutil.copy2(src, dest / part)
    return dest


def make_user_dataset(folder: Path, n: int, seed: int = 3, width: int = 320) -> dict:
    """A COCO dataset as a user would drop it, plus one broken record (missing image)."""
    from drawtune.data.synth import write_dataset

    coco = write_dataset(folder, n=n, seed=seed, width=width)
    coco["images"].append({"id": 10_000, "file_name": "images/lost.png", "width": 10, "height": 10})
    (folder / "annotations.json").write_text(json.dumps(coco, indent=1, sort_keys=True))
    return coco


def tiny_config(dataset_annotations: str) -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["datasets"] = {"drawings": {"format": "coco", "annotations": dataset_annotations}}
    cfg["split"] = {"val": 0.15, "test": 0.3, "salt": "drawtune"}
    cfg["experiments"] = {
        "demo": {
            "tuner": "full",
            "learning_rate": 0.001,
            "epochs": 1,
            "batch_size": 2,
            "grad_accum": 1,
            "max_length": 2048,
            "seed": 1,
        }
    }
    cfg["predict"] = {"batch_size": 4, "max_new_tokens": 32}
    cfg["report"] = {"overlays": 2}
    return cfg


@pytest.fixture(scope="session")
def finished_workflow(tmp_path_factory) -> Path:
    """The whole workflow run once on 20 user drawings with the tiny qwen3_vl model."""
    wd = copy_workflow(tmp_path_factory.mktemp("wf") / "drawtune")
    make_user_dataset(wd / "data" / "drawings", n=20)
    cfg = tiny_config("data/drawings/annotations.json")
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(wd)
    return wd


@pytest.fixture(scope="session")
def built_report(finished_workflow) -> Path:
    """`snakemake --report` of the finished workflow, built once (tests/workflow reads it)."""
    snakemake(finished_workflow, "--report", "results/report.html")
    return finished_workflow / "results" / "report.html"
