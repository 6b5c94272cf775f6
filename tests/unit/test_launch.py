"""Launch logic without a cluster: SLURM variables to ms-swift's launcher, DeepSpeed, resume."""

from __future__ import annotations

import importlib
import json
import logging
import sys

import pytest

from drawtune.errors import StageError
from drawtune.train import checkpoints, launch, run, swift_cmd
from drawtune.train.launch import Topology


@pytest.mark.parametrize(
    "hostlist,hosts",
    [
        ("n1", ["n1"]),
        ("n[1-2]", ["n1", "n2"]),
        ("gpu[01-03,07],login1", ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]),
        ("a[9-11]-ib", ["a9-ib", "a10-ib", "a11-ib"]),
        ("x1,y[002-003]", ["x1", "y002", "y003"]),
    ],
)
def test_expand_hostlist(hostlist, hosts):
    assert launch.expand_hostlist(hostlist) == hosts


def test_one_gpu_job_launches_one_process():
    topo = launch.topology({"SLURM_JOB_NUM_NODES": "1", "SLURM_GPUS_ON_NODE": "1"})
    assert topo == Topology(nnodes=1, gpus_per_node=1)
    assert launch.launcher_env(topo) == {}
    assert launch.deepspeed_stage("auto", topo, "cuda") is None
    assert launch.node_command(["swift", "sft"], topo) == ["swift", "sft"]


def test_two_gpu_job_uses_torchrun_and_zero2():
    env = {"SLURM_JOB_NUM_NODES": "1", "SLURM_GPUS_ON_NODE": "2", "SLURM_JOB_NODELIST": "n1"}
    topo = launch.topology(env)
    assert topo.world_size == 2
    assert launch.launcher_env(topo) == {"NPROC_PER_NODE": "2"}
    assert launch.deepspeed_stage("auto", topo, "cuda") == "zero2"
    assert launch.deepspeed_stage("zero3", topo, "cuda") == "zero3"
    assert launch.deepspeed_stage("zero3_offload", topo, "cuda") == "zero3_offload"
    assert launch.deepspeed_stage("none", topo, "cuda") is None
    assert launch.deepspeed_stage("auto", topo, "cpu") is None
    with pytest.raises(ValueError):
        launch.deepspeed_stage("zero4", topo, "cuda")


def test_gpus_from_cuda_visible_devices_without_slurm():
    assert launch.gpus_per_node({"CUDA_VISIBLE_DEVICES": "0,1,3"}) == 3
    assert launch.gpus_per_node({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert launch.gpus_per_node({}) == 0


def test_two_node_job_maps_slurm_to_rendezvous():
    env = {
        "SLURM_JOB_ID": "4711",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
        "SLURM_GPUS_ON_NODE": "4",
    }
    topo = launch.topology(env)
    assert topo == Topology(2, 4, "gpu07", launch.PORT_BASE + 4711 % launch.PORT_SPAN)
    assert topo.world_size == 8
    assert launch.launcher_env(topo) == {
        "NPROC_PER_NODE": "4",
        "NNODES": "2",
        "MASTER_ADDR": "gpu07",
        "MASTER_PORT": str(launch.PORT_BASE + 4711 % launch.PORT_SPAN),
    }
    cmd = launch.node_command(["swift", "sft", "--x", "1"], topo, python="/py")
    assert cmd[:6] == [
        "srun",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "--overlap",
        "--kill-on-bad-exit=1",
    ]
    assert cmd[6:] == ["/py", "-m", "drawtune.train.launch", "--", "swift", "sft", "--x", "1"]
    # each srun task takes its rank from its node
    assert launch.node_env({"SLURM_NODEID": "1", "SLURM_PROCID": "1"}) == {"NODE_RANK": "1"}
    assert launch.node_env({}) == {"NODE_RANK": "0"}


def test_short_nodelist_is_an_error():
    with pytest.raises(ValueError, match="fewer than 3"):
        launch.topology({"SLURM_JOB_NUM_NODES": "3", "SLURM_JOB_NODELIST": "n[1-2]"})


def _ckpt(run, step, complete=True):
    d = run / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if complete:
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return d


def test_adapter_comes_from_the_last_complete_checkpoint(tmp_path):
    """The adapter is copied from the checkpoint resume would pick: one cut off while being
    written (no trainer_state.json) is skipped, never copied as the trained model."""
    run = tmp_path / "run"
    _ckpt(run, 10)
    _ckpt(run, 20, complete=False)
    assert checkpoints.last_checkpoint(run) == run / "checkpoint-10"
    _ckpt(run, 30)
    assert checkpoints.last_checkpoint(run) == run / "checkpoint-30"


def test_no_complete_checkpoint_is_a_stage_error(tmp_path):
    _ckpt(tmp_path / "run", 5, complete=False)
    with pytest.raises(StageError, match="no complete checkpoint"):
        checkpoints.last_checkpoint(tmp_path / "run")


def test_resume_picks_last_complete_checkpoint_of_the_same_run(tmp_path):
    run = tmp_path / "run"
    fp = {"command": ["swift", "sft", "--learning_rate", "0.001"]}
    assert checkpoints.resume_checkpoint(run, fp) is None  # nothing there
    checkpoints.write_fingerprint(run, fp)
    assert checkpoints.resume_checkpoint(run, fp) is None  # killed before the first checkpoint
    _ckpt(run, 2)
    _ckpt(run, 10)
    _ckpt(run, 12, complete=False)  # cut off while being written
    assert checkpoints.resume_checkpoint(run, fp) == run / "checkpoint-10"
    # other settings: start over
    assert (
        checkpoints.resume_checkpoint(run, {"command": ["swift", "sft", "--lr", "0.002"]}) is None
    )
    (run / checkpoints.FINGERPRINT).write_text("{not json")
    assert checkpoints.resume_checkpoint(run, fp) is None


def _cfg(**over):
    cfg = {
        "tuner": "lora",
        "epochs": 1,
        "learning_rate": 1e-4,
        "batch_size": 1,
        "grad_accum": 1,
        "max_length": 1024,
        "warmup_ratio": 0.0,
        "weight_decay": 0.0,
        "freeze_vit": True,
        "freeze_aligner": True,
        "gradient_checkpointing": True,
        "seed": 1,
        "dataloader_workers": 0,
        "logging_steps": 1,
        "lora": {"rank": 8, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"},
    }
    cfg.update(over)
    return cfg


def _flag(cmd, name):
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_sft_command_deepspeed_and_checkpoint_interval():
    kw = dict(family="qwen3_vl", base="/m", train="t.jsonl", val=None, output_dir="o")
    plain = swift_cmd.sft_command(train_cfg=_cfg(), **kw)
    assert "--deepspeed" not in plain
    assert _flag(plain, "--save_strategy") == "epoch"
    cmd = swift_cmd.sft_command(train_cfg=_cfg(save_steps=5), deepspeed="zero2", **kw)
    assert _flag(cmd, "--deepspeed") == "zero2"
    assert _flag(cmd, "--save_strategy") == "steps" and _flag(cmd, "--save_steps") == "5"
    assert swift_cmd.resume_args("o/checkpoint-4") == ["--resume_from_checkpoint", "o/checkpoint-4"]
    assert swift_cmd.resume_args(None) == []


def test_launch_main_sets_node_rank(tmp_path, monkeypatch):
    """``python -m drawtune.train.launch -- CMD`` runs CMD with NODE_RANK from SLURM_NODEID."""
    import subprocess
    import sys

    out = tmp_path / "rank"
    env = {"SLURM_NODEID": "3", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "drawtune.train.launch",
            "--",
            "sh",
            "-c",
            f'echo "$NODE_RANK" > {out}',
        ],
        env=env,
        check=True,
    )
    assert out.read_text().strip() == "3"


# --------------------------------------------------------------------------- attention
def _fake_flash_attn(tmp_path, monkeypatch):
    """An importable ``flash_attn`` package (an empty one: only importability is looked at)."""
    pkg = tmp_path / "site" / "flash_attn"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    monkeypatch.syspath_prepend(str(pkg.parent))
    importlib.invalidate_caches()


def test_flash_attn_when_importable_on_gpu(tmp_path, monkeypatch, caplog):
    _fake_flash_attn(tmp_path, monkeypatch)
    assert swift_cmd.attn_impl("cuda") == "flash_attn"
    assert swift_cmd.attn_impl("cpu") == "sdpa"  # never on CPU
    kw = dict(family="qwen3_vl", base="/m", train="t.jsonl", val=None, output_dir="o")
    gpu = swift_cmd.sft_command(train_cfg=_cfg(), device="cuda", **kw)
    assert _flag(gpu, "--attn_impl") == "flash_attn"
    cpu = swift_cmd.sft_command(train_cfg=_cfg(), device="cpu", **kw)
    assert _flag(cpu, "--attn_impl") == "sdpa"
    # the choice is logged in the rule's log before the command runs
    caplog.set_level(logging.INFO, logger="drawtune")
    run.run_logged(["true", *gpu[1:]], {}, tmp_path / "x.log")  # swift's arguments
    assert "attention implementation: flash_attn" in caplog.text


def test_sdpa_when_flash_attn_is_not_importable(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import flash_attn fails
    assert swift_cmd.attn_impl("cuda") == "sdpa"
    kw = dict(family="qwen3_vl", base="/m", train="t.jsonl", val=None, output_dir="o")
    gpu = swift_cmd.sft_command(train_cfg=_cfg(), device="cuda", **kw)
    assert _flag(gpu, "--attn_impl") == "sdpa"
    caplog.set_level(logging.INFO, logger="drawtune")
    run.run_logged(["true", *gpu[1:]], {}, tmp_path / "x.log")  # swift's arguments
    assert "attention implementation: sdpa" in caplog.text


# --------------------------------------------------------------------------- inside a job step
SCONTROL = (
    "JobId=7 JobName=x UserId=root(0) JobState=RUNNING Partition=gpu NodeList=gpu[07-08] "
    "BatchHost=gpu07 NumNodes=2 NumCPUs=2 NumTasks=2 TresPerNode=gres:gpu:4"
)


def test_whole_job_from_scontrol_when_the_step_sees_one_node():
    assert launch.parse_scontrol_job(SCONTROL) == {
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[07-08]",
    }
    assert launch.parse_scontrol_job("JobId=8 NumNodes=2-2 NodeList=(null)") == {}
    assert launch.parse_scontrol_job("") == {}
    # the slurm executor's job step: one node, one task, its own node list
    step = {"SLURM_JOB_ID": "7", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "gpu07"}
    step["SLURM_GPUS_ON_NODE"] = "4"
    assert launch.topology(step).nnodes == 1
    topo = launch.topology({**step, **launch.parse_scontrol_job(SCONTROL)})
    assert topo == Topology(2, 4, "gpu07", launch.PORT_BASE + 7)
    # outside SLURM nothing is asked
    assert launch.job_environ({"PATH": "/usr/bin"}) == {"PATH": "/usr/bin"}


def test_srun_from_a_step_drops_the_step_variables():
    env = {
        "PATH": "/bin",
        "MASTER_ADDR": "n1",
        "SLURM_JOB_ID": "7",
        "SLURM_CONF": "/etc/x/slurm.conf",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NODELIST": "n1",
        "SLURM_STEP_ID": "0",
        "SRUN_CPUS_PER_TASK": "1",
        "SBATCH_GRES": "gpu:1",
    }
    assert launch.srun_environ(env) == {
        "PATH": "/bin",
        "MASTER_ADDR": "n1",
        "SLURM_JOB_ID": "7",
        "SLURM_CONF": "/etc/x/slurm.conf",
    }
