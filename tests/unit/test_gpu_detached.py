"""bench/gpu_detached.sh: the detached GPU session runs from its own copy of the working tree.

The device tool writes the working tree afresh at every call; a job that imported a module at
that moment found the file missing. These tests run the script for real (bash, setsid, tar) on a
small tree, with the tree changed under the running job the way the device tool changes it.
"""

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_detached.sh"

JOBS = """\
st job-start
while [ ! -f "$R/go" ]; do sleep 0.2; done
cat module.txt > "$R/seen.log"
mkdir -p bench/runs/r1/results/metrics/demo
echo '{"map50": 0.5}' > bench/runs/r1/results/metrics/demo/test.json
st done
"""


def _tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "bench").mkdir(parents=True)
    shutil.copy(SCRIPT, tree / "bench" / "gpu_detached.sh")
    (tree / "module.txt").write_text("v1\n")
    (tree / "jobs.sh").write_text(JOBS)
    return tree


def _run(tree: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        R=str(root / "res"),
        SRC=str(root / "src"),
        OUT=str(root / "out"),
    )
    (root / "out").mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", "bench/gpu_detached.sh", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_for(path: Path, text: str) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never said {text!r}")


def test_job_runs_from_its_copy_when_the_tree_is_rewritten(tmp_path):
    tree = _tree(tmp_path)
    assert _run(tree, tmp_path, "start", "jobs.sh").returncode == 0
    _wait_for(tmp_path / "res" / "status", "job-start")
    # the device tool's next call: the working tree's files are written afresh
    (tree / "module.txt").unlink()
    (tmp_path / "res" / "go").touch()
    polled = _run(tree, tmp_path, "poll", "60")
    assert polled.returncode == 0, polled.stderr
    assert " done" in polled.stdout
    assert (tmp_path / "res" / "seen.log").read_text() == "v1\n"
    with tarfile.open(tmp_path / "out" / "logs.tar.gz") as tar:
        names = {Path(n).name for n in tar.getnames()}
    # the run's scores come back from the copy's bench/runs
    assert {"seen.log", "r1-demo-test.json"} <= names


def test_a_new_start_refreshes_the_code_and_keeps_the_runs(tmp_path):
    tree = _tree(tmp_path)
    (tree / "stale.txt").write_text("old\n")
    assert _run(tree, tmp_path, "start", "jobs.sh").returncode == 0
    _wait_for(tmp_path / "res" / "status", "job-start")
    (tmp_path / "res" / "go").touch()
    _wait_for(tmp_path / "res" / "status", " done")
    src = tmp_path / "src"
    assert (src / "stale.txt").exists()

    (tree / "stale.txt").unlink()
    (tree / "module.txt").write_text("v2\n")
    assert _run(tree, tmp_path, "start", "jobs.sh").returncode == 0
    _wait_for(tmp_path / "res" / "status", "job-start")
    assert not (src / "stale.txt").exists()
    assert (src / "bench" / "runs" / "r1" / "results" / "metrics" / "demo" / "test.json").exists()
    (tmp_path / "res" / "go").touch()
    _wait_for(tmp_path / "res" / "status", " done")
    assert (tmp_path / "res" / "seen.log").read_text() == "v2\n"
