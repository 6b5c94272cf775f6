"""Nothing silently wrong (issue 16): a killed Snakemake takes its trainer with it, and the
rerun trains alone with the current settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, copy_workflow, make_user_dataset, planned_jobs, snakemake, tiny_config

from drawtune.jsonio import load_jsonl

pytestmark = pytest.mark.workflow
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


def _processes_naming(text: str, cwd: Path) -> list[int]:
    """Living processes in ``cwd`` whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            here = os.path.realpath(entry / "cwd")
        except OSError:
            continue
        if text in argv and state not in ("Z", "X") and here == os.path.realpath(cwd):
            found.append(int(entry.name))
    return found


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return predicate()


@linux
def test_killed_snakemake_takes_its_trainer_with_it(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    make_user_dataset(wd / "data" / "drawings", n=8)
    cfg = tiny_config("data/drawings/annotations.json")
    cfg["experiments"]["demo"]["epochs"] = 500  # far longer than the test waits
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    adapter = "results/train/demo/adapter"
    run_dir = "results/train/demo/run"  # every trainer process names it

    def trainers():
        return _processes_naming(run_dir, wd)

    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    first = subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", "profiles/local", "--cores", "2", adapter],
        cwd=wd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = _wait_for(lambda: trainers() or first.poll() is not None, 300)
        assert started and first.poll() is None, "swift sft never started"
        time.sleep(5)  # into training
        running = trainers()
    finally:
        first.send_signal(signal.SIGKILL)  # Snakemake alone: its jobs are not signalled
        first.wait()
    assert running
    assert _wait_for(lambda: not trainers(), 30), f"trainer left running: {trainers()}"
    assert (
        "Snakemake process that ran this rule has gone"
        in (wd / "logs/train_adapter/demo.log").read_text()
    )
    # the user changes the epochs and reruns (Snakemake's own lock of the folder first)
    cfg["experiments"]["demo"]["epochs"] = 1
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(wd, "--unlock")
    snakemake(wd, adapter)
    log = (wd / "logs/train_adapter/demo.log").read_text()
    assert sum(" sft " in line for line in log.splitlines() if "running: " in line) == 1
    record = json.loads((wd / adapter / "drawtune-adapter.json").read_text())
    assert record["settings"]["train"]["epochs"] == 1
    assert "--num_train_epochs 1" in " ".join(record["fingerprint"]["command"])
    assert not trainers()


def test_own_configfile_replaces_the_demo_config(tmp_path):
    """`--configfile my.yaml` alone: only the user's datasets and experiments, none of the
    demo's synthetic ones; both files given layer the second over the first."""
    wd = copy_workflow(tmp_path / "wf")
    make_user_dataset(wd / "data" / "drawings", n=4)
    mine = tiny_config("data/drawings/annotations.json")
    mine["experiments"] = {"mine": mine["experiments"]["demo"]}
    (wd / "my.yaml").write_text(yaml.safe_dump(mine, sort_keys=False))
    jobs = planned_jobs(wd, "--configfile", "my.yaml")
    assert "synth_drawings" not in jobs and "synth_classify" not in jobs, jobs
    assert jobs.count("validate_annotations") == 1 and jobs.count("train_adapter") == 1
    layered = planned_jobs(wd, "--configfile", "config/config.yaml", "my.yaml")
    assert "synth_drawings" in layered and layered.count("train_adapter") > 1


def test_failed_validation_keeps_its_rejects_and_says_the_counts(tmp_path):
    """on_error: fail with one bad record: the run stops, the terminal says the counts, and
    the message points at a rejects file that Snakemake did not delete with the job's outputs."""
    wd = copy_workflow(tmp_path / "wf")
    make_user_dataset(wd / "data" / "drawings", n=4)  # and images/lost.png, missing
    cfg = tiny_config("data/drawings/annotations.json")
    cfg["datasets"]["drawings"]["on_error"] = "fail"
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(wd, "results/validated/drawings/summary.json", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "dataset drawings: read 5, kept 4, rejected 1" in out
    kept = "logs/validate_annotations/drawings.rejects.jsonl"
    assert f"on_error is fail; see {kept}" in out
    assert not (wd / "results/validated/drawings/rejects.jsonl").exists()  # deleted by Snakemake
    (reject,) = load_jsonl(wd / kept)
    assert reject["field"] == "file_name" and "lost.png" in reject["reason"]
    # on_error: reject: the run goes on, and the terminal (not only the log) says the counts
    cfg["datasets"]["drawings"]["on_error"] = "reject"
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(wd, "results/validated/drawings/summary.json")
    assert f"dataset drawings: read 5, kept 4, rejected 1 (reasons in {kept})" in proc.stderr


def test_config_mistakes_stop_before_any_job_in_a_few_lines(tmp_path):
    """A missing local base folder names its key, a misspelled key is one line, a YAML syntax
    error names the file and line; each before any job runs."""
    wd = copy_workflow(tmp_path / "wf")
    shipped = (wd / "config/config.yaml").read_text()
    cfg = yaml.safe_load(shipped)
    cfg["experiments"]["demo"]["base"] = "./models/not-there"
    (wd / "mine.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(wd, "-n", "--configfile", "mine.yaml", check=False)
    assert proc.returncode != 0
    missing = "experiments.demo.base: local model folder ./models/not-there does not exist"
    assert missing in proc.stdout + proc.stderr
    cfg["experiments"]["demo"].pop("base")
    cfg["clases"] = cfg.pop("classes")
    (wd / "mine.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(wd, "-n", "--configfile", "mine.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "unknown key 'clases' (did you mean 'classes'?)" in out
    assert len(out.splitlines()) < 15, out
    (wd / "config/config.yaml").write_text(shipped + "model:\n  base: x\n   family: y\n")
    proc = snakemake(wd, "-n", check=False)
    n = len(shipped.splitlines())
    assert proc.returncode != 0
    where = f"config/config.yaml, line {n + 3}, column 10: YAML syntax error"
    assert where in proc.stdout + proc.stderr
    assert not (wd / "results").exists() and not (wd / "resources").exists()
