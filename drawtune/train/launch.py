"""How a training job is launched: GPUs and nodes from SLURM's environment and the DeepSpeed
stage (where to resume after preemption: ``drawtune.train.checkpoints``).

ms-swift starts ``torchrun`` itself when ``NPROC_PER_NODE`` is set, and joins several nodes
through ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each node runs its own
``swift sft``; on SLURM one task per node is started with ``srun`` and every task takes its
``NODE_RANK`` from ``SLURM_NODEID`` (``python -m drawtune.train.launch -- swift sft ...``).

All functions but ``main`` are pure over an environment mapping, so they are tested without a
cluster; the SLURM tests check the same mapping inside real jobs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

DEEPSPEED_CHOICES = ("auto", "none", "zero2", "zero3", "zero3_offload")
# MASTER_PORT is derived from the job id so two multi-node jobs sharing a node never collide.
PORT_BASE, PORT_SPAN = 29500, 2000


@dataclass(frozen=True)
class Topology:
    """Where one training job runs: nodes, GPUs per node, and the rendezvous point."""

    nnodes: int
    gpus_per_node: int
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def world_size(self) -> int:
        return self.nnodes * max(1, self.gpus_per_node)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def expand_hostlist(hostlist: str) -> list[str]:
    """SLURM's compact node list (``gpu[01-03,07],login1``) as host names, in order."""
    hosts: list[str] = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", hostlist):
        m = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", part)
        if not m:
            hosts.append(part)
            continue
        prefix, ranges, suffix = m.groups()
        for rng in ranges.split(","):
            lo, _, hi = rng.partition("-")
            hi = hi or lo
            width = len(lo)
            for i in range(int(lo), int(hi) + 1):
                hosts.append(f"{prefix}{i:0{width}d}{suffix}")
    return hosts


def _count_devices(value: str | None) -> int:
    if not value:
        return 0
    return len([d for d in value.split(",") if d.strip() not in ("", "-1")])


def gpus_per_node(env: Mapping[str, str]) -> int:
    """GPUs this node's task may use: ``SLURM_GPUS_ON_NODE`` (set by SLURM for GPU jobs), else
    the devices listed in ``CUDA_VISIBLE_DEVICES``; 0 on a CPU-only machine."""
    on_node = env.get("SLURM_GPUS_ON_NODE")
    if on_node and on_node.isdigit():
        return int(on_node)
    return _count_devices(env.get("CUDA_VISIBLE_DEVICES"))


def topology(env: Mapping[str, str]) -> Topology:
    """The job's shape from SLURM's variables (a job without them is one node)."""
    nnodes = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)
    gpus = gpus_per_node(env)
    if nnodes <= 1:
        return Topology(nnodes=1, gpus_per_node=gpus)
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    hosts = expand_hostlist(nodelist)
    if len(hosts) < nnodes:
        raise ValueError(f"SLURM_JOB_NODELIST {nodelist!r} names fewer than {nnodes} nodes")
    job_id = int(env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or 0)
    port = int(env.get("MASTER_PORT") or PORT_BASE + job_id % PORT_SPAN)
    return Topology(nnodes=nnodes, gpus_per_node=gpus, master_addr=hosts[0], master_port=port)


# The slurm executor's job step runs a rule with ``srun -n1`` after dropping every SLURM_*
# variable but these; inside that step SLURM describes the step (one node), not the job.
JOB_IDENTITY = (
    "SLURM_JOB_ID",
    "SLURM_JOBID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_CLUSTER_NAME",
    "SLURM_SUBMIT_DIR",
    "SLURM_SUBMIT_HOST",
    "SLURM_CONF",
)


def parse_scontrol_job(text: str) -> dict[str, str]:
    """The job's node count and node list from ``scontrol show job -o ID`` as the variables
    :func:`topology` reads (empty when the text names neither)."""
    fields = dict(re.findall(r"(\S+?)=(\S*)", text))
    nodes, nodelist = fields.get("NumNodes", ""), fields.get("NodeList", "")
    m = re.match(r"\d+", nodes)
    if not m or nodelist in ("", "(null)"):
        return {}
    return {"SLURM_JOB_NUM_NODES": m.group(0), "SLURM_JOB_NODELIST": nodelist}


def job_environ(env: Mapping[str, str], timeout: float = 30) -> dict[str, str]:
    """``env`` with the whole job's node count and node list asked from SLURM (``scontrol``):
    a rule run by the slurm executor sits in a one-node job step whose variables name only its
    own node. Unchanged outside SLURM or when scontrol does not answer."""
    env = dict(env)
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    scontrol = shutil.which("scontrol", path=env.get("PATH"))
    if not job_id or not scontrol:
        return env
    try:
        proc = subprocess.run(
            [scontrol, "show", "job", "-o", job_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return env
    if proc.returncode == 0:
        env.update(parse_scontrol_job(proc.stdout))
    return env


def srun_environ(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for an ``srun`` started from inside a job step: the step's SLURM_*, SRUN_* and
    SBATCH_* variables dropped (they would confine the new step to the calling step's one
    node), the job's identity kept, so srun spans the whole allocation."""
    return {
        k: v
        for k, v in env.items()
        if k in JOB_IDENTITY or not k.startswith(("SLURM_", "SRUN_", "SBATCH_"))
    }


def deepspeed_stage(choice: str, topo: Topology, device: str) -> str | None:
    """ms-swift's ``--deepspeed`` value: none on CPU or one GPU; ``auto`` is zero2 (the
    optimizer state and gradients sharded, enough for LoRA on a 4B model); ``zero3`` also
    shards the weights when the model does not fit one GPU; ``zero3_offload`` moves them and
    the optimizer to CPU memory."""
    if choice not in DEEPSPEED_CHOICES:
        raise ValueError(f"deepspeed must be one of {DEEPSPEED_CHOICES}, not {choice!r}")
    if device == "cpu" or not topo.distributed or choice == "none":
        return None
    return "zero2" if choice == "auto" else choice


def launcher_env(topo: Topology) -> dict[str, str]:
    """Variables that make ``swift sft`` start torchrun over the job's GPUs and nodes (empty for
    one process). ``NODE_RANK`` is per node and is set by :func:`node_env`."""
    if not topo.distributed:
        return {}
    env = {"NPROC_PER_NODE": str(max(1, topo.gpus_per_node))}
    if topo.nnodes > 1:
        env.update(
            NNODES=str(topo.nnodes),
            MASTER_ADDR=str(topo.master_addr),
            MASTER_PORT=str(topo.master_port),
        )
    return env


def node_env(env: Mapping[str, str]) -> dict[str, str]:
    """``NODE_RANK`` of the node running this task (``SLURM_NODEID`` of the srun step)."""
    rank = env.get("SLURM_NODEID", env.get("SLURM_PROCID", "0"))
    return {"NODE_RANK": str(int(rank))}


def node_command(cmd: list[str], topo: Topology, python: str = sys.executable) -> list[str]:
    """The command one job runs: ``cmd`` itself on one node; on several, ``srun`` starts one
    task per node (``--overlap``: it runs beside the job step that called it) and each task
    sets its ``NODE_RANK`` before running ``cmd``. Run it with :func:`srun_environ`."""
    if topo.nnodes <= 1:
        return cmd
    return [
        "srun",
        f"--nodes={topo.nnodes}",
        f"--ntasks={topo.nnodes}",
        "--ntasks-per-node=1",
        "--overlap",
        "--kill-on-bad-exit=1",
        python,
        "-m",
        "drawtune.train.launch",
        "--",
        *cmd,
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m drawtune.train.launch -- CMD...``: run CMD with this node's ``NODE_RANK``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m drawtune.train.launch -- COMMAND...", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.update(node_env(env))
    host = os.uname().nodename
    print(f"drawtune.train.launch: NODE_RANK={env['NODE_RANK']} on {host}", flush=True)
    os.execvpe(argv[0], argv, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
