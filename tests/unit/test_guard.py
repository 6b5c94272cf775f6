"""A trainer that dies with its rule, a run folder one trainer holds, an adapter checked
before it is used (issue 16, item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from drawtune.coords import ResizeSpec
from drawtune.errors import StageError
from drawtune.train.checkpoints import (
    ADAPTER_RECORD,
    LOCK,
    adapter_settings,
    check_adapter,
    clear_run_dir,
    run_lock,
    write_adapter_record,
)
from drawtune.train.guard import descendants
from drawtune.train.stages import Merge

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and prctl")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@linux
@pytest.mark.parametrize("killed", ["rule", "snakemake"])
def test_trainer_and_its_children_stop_when_the_rule_or_snakemake_dies(tmp_path, killed):
    """A 'snakemake' starts a 'rule script' that runs a command (which starts a grandchild)
    under the guard; SIGKILL of either leaves nothing behind."""
    pids = tmp_path / "pids"
    rule = tmp_path / "rule.py"
    rule.write_text(
        textwrap.dedent(f"""
        import subprocess, sys, time
        from drawtune.train import guard
        cmd = ["bash", "-c", "sleep 600 & echo $! > {pids}; sleep 601"]
        subprocess.Popen(guard.command(cmd), preexec_fn=guard.die_with_parent)
        time.sleep(600)
        """)
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # the 'snakemake' here is a shell named snakemake (lineage() looks for that name)
    top = subprocess.Popen(
        ["bash", "-c", f'exec -a snakemake bash -c "{sys.executable} {rule}; true"'], env=env
    )
    deadline = time.monotonic() + 30
    while not (pids.is_file() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    grandchild = int(pids.read_text())
    tree = descendants(top.pid)
    assert grandchild in tree
    script = next(p for p in tree if b"rule.py" in open(f"/proc/{p}/cmdline", "rb").read())
    os.kill(top.pid if killed == "snakemake" else script, 9)
    top.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in tree if p != script) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in tree if _alive(p)]
    if killed == "snakemake":  # the rule's script is no trainer: it ends when the guard does
        left = [p for p in left if p != script]
    assert not left, f"left running: {left}"
    for p in tree:
        if _alive(p):
            os.kill(p, 9)


def test_a_run_folder_holds_one_trainer(tmp_path):
    run = tmp_path / "run"
    with run_lock(run):
        holder = (run / LOCK).read_text()
        assert f"pid {os.getpid()}" in holder
        code = (
            "import sys; from drawtune.train.checkpoints import run_lock\n"
            f"with run_lock({str(run)!r}, wait_s=0.5): pass"
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert proc.returncode != 0
        assert "in use by another trainer" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
        (run / "checkpoint-1").mkdir()
        clear_run_dir(run)  # a fresh start keeps the lock
        assert [p.name for p in run.iterdir()] == [LOCK]
    with run_lock(run, wait_s=0):  # released when the trainer ends
        pass


def test_adapter_with_other_settings_is_not_used(tmp_path):
    resize = {"min_pixels": 3136, "max_pixels": 50176}
    old = adapter_settings("tiny", "qwen3_vl", resize, {"epochs": 3, "tuner": "lora"})
    new = adapter_settings("tiny", "qwen3_vl", resize, {"epochs": 1, "tuner": "lora"})
    write_adapter_record(tmp_path, old, {"command": ["swift", "sft"], "environment": {}})
    check_adapter(tmp_path, old)
    with pytest.raises(StageError, match=r"train\.epochs: 3 \(config: 1\)"):
        check_adapter(tmp_path, new)
    (tmp_path / ADAPTER_RECORD).unlink()
    check_adapter(tmp_path, new)  # made before adapters recorded their settings


def test_merge_refuses_an_adapter_trained_for_another_config(tmp_path):
    resize = {"min_pixels": 3136, "max_pixels": 50176}
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    write_adapter_record(adapter, adapter_settings("tiny", "qwen3_vl", resize, {"epochs": 3}), {})
    merge = Merge(
        family="qwen3_vl",
        spec=ResizeSpec(**resize),
        log_path=str(tmp_path / "merge.log"),
        base="tiny",
        adapter=str(adapter),
        tuner="full",
        merged_out=str(tmp_path / "merged"),
        trained_with=adapter_settings("tiny", "qwen3_vl", resize, {"epochs": 1}),
    )
    with pytest.raises(StageError, match="trained with other settings"):
        merge.run()
    assert not (tmp_path / "merged").exists()
