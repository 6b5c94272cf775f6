"""profiles/slurm against a real SLURM cluster on localhost with job accounting
(tests/support/slurm_cluster.py): the GPU rules go through sbatch with the shipped profile's
`sacct` status checks and `--requeue`, a requeued training resumes from its checkpoint in the
same job, and 2-GPU / 2-node jobs ask SLURM for the right resources and start ms-swift's
launcher with the right variables.

Skipped only where slurm-wlm, slurmdbd, mariadb-server and munge are not installed or the tests
do not run as root (`make slurm-deps` installs them); CI installs them and sets
DRAWTUNE_REQUIRE_SLURM=1, which turns that skip into a failure. Every SLURM call runs under a
hard timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT, copy_workflow, make_user_dataset, tiny_config
from slurm_cluster import NODES, missing_binaries, start_cluster

from drawtune.jsonio import load_jsonl


def _unavailable() -> str | None:
    if missing := missing_binaries():
        return f"SLURM not installed (missing {missing}): run `make slurm-deps`"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs"
    return None


UNAVAILABLE = _unavailable()
# CI sets DRAWTUNE_REQUIRE_SLURM=1: there a missing SLURM fails the tests instead of skipping them
REQUIRED = os.environ.get("DRAWTUNE_REQUIRE_SLURM") == "1"
pytestmark = [
    pytest.mark.workflow,
    pytest.mark.slurm,
    pytest.mark.skipif(bool(UNAVAILABLE) and not REQUIRED, reason=str(UNAVAILABLE)),
]

PROFILE = "profiles/slurm-test"
GPU_RULES = ("train_adapter", "merge_adapter", "predict_split")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if UNAVAILABLE:
        pytest.fail(f"{UNAVAILABLE} (DRAWTUNE_REQUIRE_SLURM=1)")
    # a short path: munge's socket path must stay under the UNIX socket limit
    root = Path(os.environ.get("DRAWTUNE_SLURM_TMP", "/tmp")) / f"dts{os.getpid()}"
    c = start_cluster(root)
    yield c
    c.stop()
    shutil.rmtree(root, ignore_errors=True)


def write_test_profile(wd: Path, train_resources: dict | None = None) -> None:
    """profiles/slurm with the sizes a one-machine test cluster needs; its status command
    (sacct), requeue and log settings are the shipped ones. ``train_resources`` are added to
    train_adapter's (a command-line --set-resources would replace them all)."""
    prof = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert prof["slurm-status-command"] == "sacct" and prof["slurm-requeue"] is True
    prof.update(
        {
            "jobs": 4,
            "local-cores": 2,
            "latency-wait": 5,
            "slurm-init-seconds-before-status-checks": 1,
            "slurm-no-account": True,
        }
    )
    prof["default-resources"] = {"slurm_partition": "gpu"}
    small = {"gpu": 1, "cpus_per_gpu": 1, "mem_mb": 1000, "runtime": 30}
    prof["set-resources"] = {rule: dict(small) for rule in GPU_RULES}
    prof["set-resources"]["train_adapter"].update(train_resources or {})
    (wd / PROFILE).mkdir(parents=True, exist_ok=True)
    (wd / PROFILE / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))


@pytest.fixture(scope="module")
def prepared(cluster, tmp_path_factory) -> Path:
    """A workflow copy whose light rules (data checks, split, conversion, tiny model) ran once,
    locally, through the test profile; each test starts from a copy of it."""
    wd = copy_workflow(tmp_path_factory.mktemp("slurm") / "wf")
    make_user_dataset(wd / "data" / "drawings", n=20)
    cfg = tiny_config("data/drawings/annotations.json")
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    write_test_profile(wd)
    swift = [f"results/swift/demo/{s}.jsonl" for s in ("train", "val", "test")]
    run_snakemake(cluster, wd, *swift, "resources/models/tiny-qwen3_vl")
    return wd


def prepare(prepared: Path, wd: Path, train_resources: dict | None = None, **experiment) -> Path:
    """A copy of ``prepared`` with changed settings of the `demo` experiment and changed
    train_adapter resources in the test profile."""
    shutil.copytree(prepared, wd, symlinks=True)
    if train_resources:
        write_test_profile(wd, train_resources)
    cfg = yaml.safe_load((wd / "config" / "config.yaml").read_text())
    cfg["experiments"]["demo"].update(experiment)
    (wd / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return wd


def smk_cmd(*args: str) -> list[str]:
    return [str(BIN / "snakemake"), "--profile", PROFILE, *args]


def start_snakemake(cluster, wd: Path, *args: str) -> subprocess.Popen:
    env = cluster.env(dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"))
    return subprocess.Popen(
        smk_cmd(*args),
        cwd=wd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for snakemake; past ``timeout`` its process group is killed (it may ignore
    SIGTERM while polling SLURM)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"snakemake still running after {timeout} s:\n{out[-4000:]}") from None
    return proc.returncode, out


def run_snakemake(cluster, wd: Path, *args: str, timeout: float = 240) -> str:
    rc, out = finish(start_snakemake(cluster, wd, *args), timeout)
    assert rc == 0, out[-6000:]
    return out


def slurm_job_ids(wd: Path, rule: str) -> list[str]:
    """Job ids of a rule, from the plugin's per-job SLURM logs (<jobid>.log)."""
    logs = (wd / ".snakemake/slurm_logs" / f"rule_{rule}").rglob("*.log")
    return sorted((p.stem for p in logs), key=int)


def job_info(cluster, job_id: str) -> dict:
    out = cluster.run("scontrol", "show", "job", "-o", job_id, timeout=10)
    return dict(re.findall(r"(\S+?)=(\S*)", out))


def batch_script(cluster, job_id: str) -> str:
    return cluster.run("scontrol", "write", "batch_script", job_id, "-", timeout=10)


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"snakemake ended before {what}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} after {timeout} s")


def interrupt(proc: subprocess.Popen, timeout: float = 60) -> str:
    """Ctrl-C for snakemake: it cancels its jobs at once and exits when the SLURM plugin's
    status thread next wakes, which after a long wait can be minutes (stop_after_inspection)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, out = finish(proc, timeout)
    return out


# --------------------------------------------------------------------------- preemption
STEP_RE = re.compile(r"'global_step/max_steps': '(\d+)/(\d+)'")


@pytest.fixture(scope="module")
def preempted(cluster, prepared, tmp_path_factory) -> dict:
    """The training job submitted through the test profile and requeued by SLURM (scontrol
    requeue: what preemption with PreemptMode=REQUEUE and a node failure do) once its first
    checkpoint is written; the same Snakemake run goes on to the adapter, then the whole
    workflow runs to the end. Shared by the preemption and the whole-workflow tests (one
    training instead of two)."""
    wd = prepare(
        prepared, tmp_path_factory.mktemp("preempted") / "wf", epochs=1, batch_size=1, save_steps=2
    )
    # first the training alone (nothing else competes for the CPUs)
    proc = start_snakemake(cluster, wd, "results/train/demo/adapter")
    run = wd / "results/train/demo/run"
    try:
        ckpt = wait_for(
            lambda: next(iter(sorted(run.glob("checkpoint-*/trainer_state.json"))), None),
            240,
            "first checkpoint",
            proc,
        )
        (job_id,) = slurm_job_ids(wd, "train_adapter")
        first = {
            "job_id": job_id,
            "checkpoint": ckpt.parent.name,
            "checkpoint_state": json.loads(ckpt.read_text()),
        }
        cluster.run("scontrol", "requeue", job_id, timeout=10)
        first["saved"] = sorted(int(p.name.split("-")[1]) for p in run.glob("checkpoint-*"))
        # SLURM holds a requeued job back for two minutes; the test cluster lets it go at once
        wait_for(lambda: job_info(cluster, job_id)["JobState"] == "PENDING", 60, "requeue", proc)
        cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now", timeout=10)
        rc, out_train = finish(proc, timeout=360)
    finally:
        if proc.poll() is None:
            interrupt(proc)
    assert rc == 0, out_train[-6000:]
    first["restarts"] = job_info(cluster, job_id)["Restarts"]
    first["sacct"] = cluster.run(
        "sacct", "-X", "-P", "-n", "-j", job_id, "-o", "JobIdRaw,State", timeout=30
    )  # fmt: skip
    first["train_log"] = (wd / "logs/train_adapter/demo.log").read_text()
    out = run_snakemake(cluster, wd, timeout=360)
    return {"wd": wd, "first": first, "out": out_train + out}


def test_requeued_training_resumes_from_checkpoint(preempted):
    wd, first = preempted["wd"], preempted["first"]
    assert first["saved"], "the requeued run left no checkpoint"
    # the checkpoint's own trainer state is at its step
    assert first["checkpoint_state"]["global_step"] == int(first["checkpoint"].split("-")[1])
    # SLURM ran the same job again (accounting has it), no second submission
    assert first["restarts"] == "1", first
    assert slurm_job_ids(wd, "train_adapter") == [first["job_id"]]
    assert first["sacct"].strip().startswith(f"{first['job_id']}|COMPLETED"), first["sacct"]
    log = first["train_log"]  # the requeued attempt's
    m = re.search(r"resuming from \S*checkpoint-(\d+)", log)
    assert m, log[-3000:]
    resumed_at = int(m.group(1))
    assert resumed_at >= 2 and resumed_at in first["saved"]
    assert f"--resume_from_checkpoint results/train/demo/run/checkpoint-{resumed_at}" in log
    steps = [(int(a), int(b)) for a, b in STEP_RE.findall(log)]
    assert steps, log[-3000:]
    max_steps = steps[0][1]
    # the step counter continues after the checkpoint instead of starting at 1
    assert steps[0][0] == resumed_at + 1, steps[:3]
    assert steps[-1][0] == max_steps and max_steps > resumed_at
    target = wd / "results/train/demo/adapter"
    assert (target / "model.safetensors").is_file()
    assert json.loads((target / "trainer_state.json").read_text())["global_step"] == max_steps


# --------------------------------------------------------------------------- whole workflow
def test_workflow_runs_gpu_rules_as_slurm_jobs(cluster, preempted):
    wd, out = preempted["wd"], preempted["out"]
    assert "sbatch" in out.lower() or "submitted" in out.lower(), out[-3000:]
    metrics = json.loads((wd / "results/metrics/demo/test.json").read_text())
    assert metrics["n_images"] == len(load_jsonl(wd / "results/swift/demo/test.jsonl")) > 0
    assert "Nothing to be done" in run_snakemake(cluster, wd, "-n", timeout=60)
    # sacct answered every status check (accounting works; none went missing)
    assert "Unable to get the status of all active jobs" not in out
    # completed jobs: train (requeued once), merge, predict for demo and base (their validation
    # and test splits)
    counts = {"train_adapter": 1, "merge_adapter": 1, "predict_split": 4}
    for rule, n in counts.items():
        infos = [job_info(cluster, job_id) for job_id in slurm_job_ids(wd, rule)]
        done = [i for i in infos if i["JobState"] == "COMPLETED"]
        assert len(done) == n == len(infos), (rule, [i["JobState"] for i in infos])
        for info in done:
            assert info["Partition"] == "gpu"
            assert info["TresPerJob"] == "gres:gpu:1", info
            assert info["NumNodes"] == "1" and info["MinMemoryNode"] == "1000M"
            assert info["TimeLimit"] == "00:30:00"
            assert f"rule_{rule}" in info["Comment"]
            assert info["Requeue"] == "1"  # sbatch --requeue, from the shipped profile
            script = batch_script(cluster, info["JobId"])
            assert "snakemake" in script and rule in script
    # light rules never went to SLURM
    for rule in ("validate_annotations", "convert_annotations", "score_detections"):
        assert slurm_job_ids(wd, rule) == []
    # the train job saw its GPU through SLURM and logged how it launched
    log = (wd / "logs/train_adapter/demo.log").read_text()
    assert "launch: nodes=1 gpus_per_node=1 world_size=1 deepspeed=none attention=sdpa" in log


# --------------------------------------------------------------------------- GPUs and nodes
def _launch_line(wd: Path) -> str | None:
    log = wd / "logs/train_adapter/demo.log"
    if not log.is_file():
        return None
    return next((ln for ln in log.read_text().splitlines() if " launch: " in ln), None)


def _submit_and_inspect(cluster, wd: Path) -> tuple[dict, str, str]:
    """Submit the train job; once its launch is logged, read what SLURM holds about it and
    cancel it (this machine has no GPU to train on)."""
    target = "results/train/demo/adapter"
    proc = start_snakemake(cluster, wd, target)
    try:
        line = wait_for(lambda: _launch_line(wd), 180, "launch line", proc)
        job_id = slurm_job_ids(wd, "train_adapter")[-1]
        info, script = job_info(cluster, job_id), batch_script(cluster, job_id)
        cluster.run("scancel", job_id, timeout=10)
    finally:
        stop_after_inspection(proc)
    return info, script, line


def stop_after_inspection(proc: subprocess.Popen) -> None:
    """Stop snakemake once its job is inspected and cancelled (scancel): its process group is
    killed. A Ctrl-C would make snakemake wait for the SLURM plugin's status thread to wake:
    the plugin lengthens its sleep between status checks by 10 s after each check that finds
    no job finished (up to 180 s), and snakemake's shutdown joins that thread. Under the load
    of a full CI run the job takes minutes to start, the sleep grows past a minute, and in two
    fresh-clone CI runs (2026-12-01) snakemake had not exited 60 s and 180 s after the Ctrl-C.
    What these tests check, the job's request and its launch line, is read before."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def test_two_gpu_job_request_and_launcher(cluster, prepared, tmp_path):
    wd = prepare(prepared, tmp_path / "wf", train_resources={"gpu": 2})
    info, script, line = _submit_and_inspect(cluster, wd)
    assert info["TresPerJob"] == "gres:gpu:2" and info["NumNodes"] == "1", info
    assert info["NodeList"] in NODES
    assert "train_adapter" in script
    # two GPUs on one node: torchrun over both with ZeRO-2, no multi-node variables
    assert "nodes=1 gpus_per_node=2 world_size=2 deepspeed=zero2" in line, line
    assert line.endswith("NPROC_PER_NODE=2"), line


def test_two_node_job_request_and_launcher(cluster, prepared, tmp_path):
    resources = {"nodes": 2, "gres": "gpu:2", "gpu": 0}
    wd = prepare(prepared, tmp_path / "wf", train_resources=resources)
    info, script, line = _submit_and_inspect(cluster, wd)
    assert info["NumNodes"] == "2" and info["NodeList"] == "n[1-2]", info
    assert info["TresPerNode"] == "gres:gpu:2" and "TresPerJob" not in info, info
    assert "train_adapter" in script
    job_id = info["JobId"]
    port = 29500 + int(job_id) % 2000
    assert "nodes=2 gpus_per_node=2 world_size=4 deepspeed=zero2" in line, line
    assert line.endswith(f"MASTER_ADDR=n1 MASTER_PORT={port} NNODES=2 NPROC_PER_NODE=2"), line


RANKS_SNAKEFILE = """
import os
from drawtune.train import launch, run

rule ranks:
    output:
        "ranks/topology.txt",
    log:
        "logs/ranks.log",
    resources:
        nodes=2,
        gres="gpu:2",
        gpu=0,
        cpus_per_task=1,
        mem_mb=500,
        runtime=5,
    run:
        # what Train.run does on several nodes, with a probe in place of `swift sft`
        environ = launch.job_environ(os.environ)
        topo = launch.topology(environ)
        probe = (
            'echo "$NODE_RANK $NNODES $MASTER_ADDR $MASTER_PORT $NPROC_PER_NODE '
            '$CUDA_VISIBLE_DEVICES" > ranks/"$SLURMD_NODENAME"'
        )
        run.run_logged(
            launch.node_command(["sh", "-c", probe], topo),
            launch.launcher_env(topo),
            log[0],
            environ=launch.srun_environ(environ),
        )
        with open(output[0], "w") as f:
            f.write(repr(topo))
"""


def test_two_node_job_runs_one_task_per_node_with_its_rank(cluster, tmp_path):
    """Inside a 2-node job run by the slurm executor (whose job step sees one node only), the
    training's launch finds both nodes, and srun starts one task per node with NODE_RANK from
    its node, the rendezvous variables and that node's GPUs."""
    wd = tmp_path / "wf"
    (wd / "ranks").mkdir(parents=True)
    (wd / "Snakefile").write_text(RANKS_SNAKEFILE)
    write_test_profile(wd)
    prof = yaml.safe_load((wd / PROFILE / "config.yaml").read_text())
    del prof["set-resources"]
    (wd / PROFILE / "config.yaml").write_text(yaml.safe_dump(prof))
    run_snakemake(cluster, wd, timeout=120)
    (job_id,) = slurm_job_ids(wd, "ranks")
    info = job_info(cluster, job_id)
    assert info["NumNodes"] == "2" and info["JobState"] == "COMPLETED", info
    port = 29500 + int(job_id) % 2000
    assert (wd / "ranks/topology.txt").read_text() == (
        f"Topology(nnodes=2, gpus_per_node=2, master_addr='n1', master_port={port}, node_rank=None)"
    )
    ranks = {p.name: p.read_text().split() for p in (wd / "ranks").iterdir() if p.suffix == ""}
    assert ranks == {
        "n1": ["0", "2", "n1", str(port), "2", "0,1"],
        "n2": ["1", "2", "n1", str(port), "2", "0,1"],
    }
