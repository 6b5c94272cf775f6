"""Launch logic without a cluster: SLURM variables to ms-swift's launcher, DeepSpeed, resume."""

from __future__ import annotations

import importlib
import json
import logging
import shutil
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


@pytest.mark.parametrize("stage", ["zero2", "zero3", "zero3_offload"])
def test_a_named_deepspeed_stage_holds_on_one_gpu(stage):
    """World size 1 with `deepspeed: zero2|zero3`: ms-swift gets the stage and starts torchrun
    for the one process (NPROC_PER_NODE=1), which is how it initialises DeepSpeed."""
    for topo in (Topology(nnodes=1, gpus_per_node=1), Topology(nnodes=1, gpus_per_node=0)):
        assert launch.deepspeed_stage(stage, topo, "cuda") == stage
        assert launch.launcher_env(topo, stage) == {"NPROC_PER_NODE": "1"}
        assert launch.deepspeed_stage(stage, topo, "cpu") is None  # DeepSpeed needs a GPU
    one = Topology(nnodes=1, gpus_per_node=1)
    assert launch.deepspeed_stage("none", one, "cuda") is None
    assert launch.launcher_env(one, None) == {}


def test_nvlink_multicast_off_unless_the_job_sets_it():
    assert launch.collectives_env({}) == {
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "NVSHMEM_DISABLE_NVLS": "1",
    }
    # a variable the job's environment sets is its own (export NCCL_NVLS_ENABLE=1 allows it)
    assert launch.collectives_env({"NCCL_NVLS_ENABLE": "1"}) == {
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "NVSHMEM_DISABLE_NVLS": "1",
    }


def _spec(pools: dict, kind: str, index: int) -> str:
    return json.dumps({"cluster": pools, "task": {"type": kind, "index": index}})


def test_vertex_replicas_from_cluster_spec():
    """On Vertex AI the topology comes from CLUSTER_SPEC and the GPUs torch sees: every replica
    runs its own trainer with its NODE_RANK (no srun), world size counts all GPUs."""
    pools = {"workerpool0": ["cmle-chief:2222"], "workerpool1": ["w0:2222", "w1:2222"]}
    topo = launch.topology({"CLUSTER_SPEC": _spec(pools, "workerpool1", 1)}, visible=4)
    assert topo == Topology(3, 4, "cmle-chief", 2222, node_rank=2)
    assert topo.world_size == 12
    assert launch.launcher_env(topo, "zero3") == {
        "NPROC_PER_NODE": "4",
        "NNODES": "3",
        "MASTER_ADDR": "cmle-chief",
        "MASTER_PORT": "2222",
        "NODE_RANK": "2",
    }
    assert launch.node_command(["swift", "sft"], topo) == ["swift", "sft"]
    chief = launch.topology({"CLUSTER_SPEC": _spec(pools, "workerpool0", 0)}, visible=4)
    assert chief.node_rank == 0 and launch.launcher_env(chief)["NODE_RANK"] == "0"
    # one replica of 8 GPUs: torchrun over all of them, ZeRO-2 for auto
    single = _spec({"workerpool0": ["h:2222"]}, "workerpool0", 0)
    topo = launch.topology({"CLUSTER_SPEC": single}, visible=8)
    assert topo == Topology(1, 8) and topo.world_size == 8
    assert launch.deepspeed_stage("auto", topo, "cuda") == "zero2"
    assert launch.launcher_env(topo, "zero2") == {"NPROC_PER_NODE": "8"}
    # CUDA_VISIBLE_DEVICES, where set, says which GPUs are the job's
    env = {"CLUSTER_SPEC": single, "CUDA_VISIBLE_DEVICES": "0,1"}
    assert launch.topology(env, visible=8).gpus_per_node == 2
    # outside Vertex and SLURM the GPUs torch sees do not make a multi-GPU job
    assert launch.topology({}, visible=8) == Topology(1, 0)
    with pytest.raises(ValueError, match="CLUSTER_SPEC"):
        launch.topology({"CLUSTER_SPEC": "{not json"})


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


# --------------------------------------------------------------------------- the train stage
FAKE_SWIFT = r"""#!{python}
# Stands in for `swift sft` on a GPU: records its arguments and launcher variables, writes what
# ms-swift writes (a complete checkpoint, logging.jsonl).
import json, os, pathlib, sys
args = sys.argv[2:]
out = pathlib.Path(args[args.index("--output_dir") + 1])
keys = ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT",
        "NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
with open(out.parent / "calls.jsonl", "a") as fh:
    fh.write(json.dumps({{"args": args, "env": {{k: os.environ.get(k) for k in keys}}}}) + "\n")
ck = out / "checkpoint-2"
ck.mkdir(parents=True, exist_ok=True)
(ck / "trainer_state.json").write_text("{{}}")
(ck / "adapter_config.json").write_text("{{}}")
row = {{"loss": 1.0, "global_step/max_steps": "2/2", "train_speed(s/it)": 1.0}}
(out / "logging.jsonl").write_text(json.dumps(row) + "\n")
"""


def _train_on_fake_gpu(
    tmp_path, monkeypatch, environ, gpus=1, deepspeed_installed=True, follower=False, **cfg
):
    """The train stage on a "GPU" (``gpus`` that torch sees) with a fake ``swift``; returns its
    calls (arguments and launcher environment) and the telemetry rows."""
    from drawtune.coords import ResizeSpec
    from drawtune.train import gpu_plan, stages, telemetry
    from drawtune.train.stages import Train

    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "swift").write_text(FAKE_SWIFT.format(python=sys.executable))
    (bindir / "swift").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    monkeypatch.setattr(gpu_plan, "gpu_memory_gib", lambda device: 139.8)
    monkeypatch.setattr(stages, "gpu_count", lambda device: gpus)
    monkeypatch.setattr(telemetry, "gpu_name", lambda device: "NVIDIA H200")
    if deepspeed_installed:  # an importable `deepspeed` (only importability is looked at)
        pkg = tmp_path / "site" / "deepspeed"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(pkg.parent))
    else:
        monkeypatch.setitem(sys.modules, "deepspeed", None)
    importlib.invalidate_caches()
    base = tmp_path / "base"  # a 4B-shaped model as the plan reads it (config, safetensors header)
    base.mkdir(exist_ok=True)
    text = {"num_hidden_layers": 36, "hidden_size": 2560, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936}  # fmt: skip
    (base / "config.json").write_text(json.dumps({"text_config": text}))
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4_437_815_808], "data_offsets": [0, 0]}})
    (base / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header.encode())
    row = {"messages": [{"role": "user", "content": "<image>find"},
                        {"role": "assistant", "content": "[]"}], "images": ["a.png"]}  # fmt: skip
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "train.manifest.jsonl").write_text(
        json.dumps({"image": "a.png", "resized_width": 64, "resized_height": 64}) + "\n"
    )
    train_cfg = _cfg(**{"resume": False, "global_batch": 16, **cfg})
    out = tmp_path / "out"
    Train(
        family="qwen3_vl", base=str(base), train_jsonl=tmp_path / "train.jsonl",
        val_jsonl=None, train_cfg=train_cfg, spec=ResizeSpec(3136, 64 * 64),
        run_dir=out / "run", adapter_out=out / "adapter", logging_out=out / "logging.jsonl",
        tensorboard_out=out / "tb", log_path=tmp_path / "train.log",
        manifest_jsonl=tmp_path / "train.manifest.jsonl", telemetry_out=out / "telemetry.jsonl",
    ).in_job(chief=not follower).run(device="cuda", environ=environ)  # fmt: skip
    calls = [json.loads(x) for x in (out / "calls.jsonl").read_text().splitlines()]
    telemetry = out / "telemetry.jsonl"
    return calls, [
        json.loads(x) for x in telemetry.read_text().splitlines()
    ] if telemetry.exists() else []


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_one_gpu_training_runs_the_experiments_deepspeed_stage(tmp_path, monkeypatch, stage):
    """A local or single-GPU job with `deepspeed: zero2|zero3`: swift gets --deepspeed and
    NPROC_PER_NODE=1 (torchrun, which DeepSpeed needs), a rendezvous port of its own, and
    NVLink multicast off."""
    calls, rows = _train_on_fake_gpu(tmp_path, monkeypatch, {}, deepspeed=stage)
    (call,) = calls
    assert _flag(call["args"], "--deepspeed") == stage
    env = call["env"]
    assert env["NPROC_PER_NODE"] == "1" and env["NNODES"] is None
    assert env["MASTER_PORT"].isdigit() and env["MASTER_PORT"] != "29500"
    assert (env["NCCL_NVLS_ENABLE"], env["TORCH_SYMM_MEM_DISABLE_MULTICAST"]) == ("0", "1")
    assert env["NVSHMEM_DISABLE_NVLS"] == "1"
    assert rows[0]["gpus"] == 1


def test_one_gpu_training_without_deepspeed_runs_one_plain_process(tmp_path, monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "1")  # the user's own choice wins
    calls, _ = _train_on_fake_gpu(tmp_path, monkeypatch, dict(__import__("os").environ))
    (call,) = calls
    assert "--deepspeed" not in call["args"]  # auto on one GPU
    assert call["env"]["NPROC_PER_NODE"] is None and call["env"]["MASTER_PORT"] is None
    assert call["env"]["NCCL_NVLS_ENABLE"] == "1"


def test_a_deepspeed_stage_without_deepspeed_installed_says_how_to_install(tmp_path, monkeypatch):
    with pytest.raises(StageError, match=r"deepspeed: zero3 needs DeepSpeed.*\.\[gpu\]"):
        _train_on_fake_gpu(tmp_path, monkeypatch, {}, deepspeed_installed=False, deepspeed="zero3")


def test_vertex_chief_of_two_replicas_trains_on_all_their_gpus(tmp_path, monkeypatch):
    """A Vertex AI replica (CLUSTER_SPEC, 4 GPUs torch sees): torchrun over its GPUs with its
    NODE_RANK and the chief's address, no srun, ZeRO-2 for auto; telemetry counts 8 GPUs."""
    pools = {"workerpool0": ["cmle-chief:2222"], "workerpool1": ["cmle-w0:2222"]}
    environ = {"CLUSTER_SPEC": _spec(pools, "workerpool0", 0)}
    calls, rows = _train_on_fake_gpu(tmp_path, monkeypatch, environ, gpus=4)
    (call,) = calls
    assert _flag(call["args"], "--deepspeed") == "zero2"
    assert call["env"] == {
        "NPROC_PER_NODE": "4",
        "NNODES": "2",
        "NODE_RANK": "0",
        "MASTER_ADDR": "cmle-chief",
        "MASTER_PORT": "2222",
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "NVSHMEM_DISABLE_NVLS": "1",
    }
    assert rows[0]["gpus"] == 8
    log = (tmp_path / "train.log").read_text()
    assert "telemetry (NVIDIA H200, 8 GPU(s)" in log


def test_vertex_replica_trains_from_the_chiefs_run_folder_and_writes_nothing(tmp_path, monkeypatch):
    """A restarted two-replica job: the chief and the other replica both resume from the last
    checkpoint in the shared run folder; the replica neither clears it nor writes outputs."""
    pools = {"workerpool0": ["cmle-chief:2222"], "workerpool1": ["cmle-w0:2222"]}
    chief = {"CLUSTER_SPEC": _spec(pools, "workerpool0", 0)}
    _train_on_fake_gpu(tmp_path, monkeypatch, chief, gpus=4, resume=True)  # the first attempt
    out = tmp_path / "out"
    shutil.rmtree(out / "adapter")
    (out / "telemetry.jsonl").unlink()
    replica = {"CLUSTER_SPEC": _spec(pools, "workerpool1", 0)}
    calls, _ = _train_on_fake_gpu(
        tmp_path, monkeypatch, replica, gpus=4, follower=True, resume=True
    )
    assert _flag(calls[-1]["args"], "--resume_from_checkpoint") == str(out / "run/checkpoint-2")
    assert calls[-1]["env"]["NODE_RANK"] == "1"
    assert (out / "run" / checkpoints.FINGERPRINT).is_file()  # the chief's, left in place
    assert not (out / "adapter").exists() and not (out / "telemetry.jsonl").exists()
