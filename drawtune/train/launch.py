"""How a training job is launched: GPUs and nodes from SLURM's environment or Vertex AI's
``CLUSTER_SPEC``, and the DeepSpeed stage (where to resume after preemption:
``drawtune.train.checkpoints``).

ms-swift starts ``torchrun`` itself when ``NPROC_PER_NODE`` is set, and joins several nodes
through ``NNODES``, ``NODE_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each node runs its own
``swift sft``; on SLURM one task per node is started with ``srun`` and every task takes its
``NODE_RANK`` from ``SLURM_NODEID`` (``python -m drawtune.train.launch -- swift sft ...``); on
Vertex AI every replica runs its own worker, which knows its rank from ``CLUSTER_SPEC``.

All functions but ``main`` and :func:`free_port` are pure over an environment mapping, so they
are tested without a cluster; the SLURM tests check the same mapping inside real jobs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

DEEPSPEED_CHOICES = ("auto", "none", "zero2", "zero3", "zero3_offload")
# MASTER_PORT is derived from the job id so two multi-node jobs sharing a node never collide.
PORT_BASE, PORT_SPAN = 29500, 2000


# NVLink multicast (NVLS) off in NCCL, PyTorch's symmetric memory and NVSHMEM: on shared GPU
# hosts a program that uses it can put every GPU of the host out of service. Set for ms-swift's
# training unless the job's environment sets the variable itself (export NCCL_NVLS_ENABLE=1 to
# allow it; on Vertex AI through `env:` in vertex.yaml).
COLLECTIVES_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


@dataclass(frozen=True)
class Topology:
    """Where one training job runs: nodes, GPUs per node, and the rendezvous point.
    ``node_rank`` is set where each node starts its own trainer (Vertex AI replicas); None
    where one process starts them all (``srun`` on SLURM, or one node)."""

    nnodes: int
    gpus_per_node: int
    master_addr: str | None = None
    master_port: int | None = None
    node_rank: int | None = None

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


def gpus_per_node(env: Mapping[str, str], visible: int = 0) -> int:
    """GPUs this node's task may use: ``SLURM_GPUS_ON_NODE`` (set by SLURM for GPU jobs), else
    the devices listed in ``CUDA_VISIBLE_DEVICES``, else ``visible`` (the GPUs torch sees, given
    where a machine's GPUs are all the job's: a Vertex AI replica); 0 on a CPU-only machine."""
    on_node = env.get("SLURM_GPUS_ON_NODE")
    if on_node and on_node.isdigit():
        return int(on_node)
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        return _count_devices(env.get("CUDA_VISIBLE_DEVICES"))
    return visible


def vertex_topology(cluster_spec: str, gpus: int) -> Topology:
    """A Vertex AI replica's place in its job from ``CLUSTER_SPEC``: the chief (worker pool 0)
    is node 0 and the rendezvous point, pool 1's replicas follow in order; ``gpus``: the
    replica's GPUs. Other pools (parameter or reduction servers) train nothing."""
    try:
        spec = json.loads(cluster_spec)
        cluster, task = spec.get("cluster") or {}, spec.get("task") or {}
        chief = list(cluster.get("workerpool0") or [])
        workers = list(cluster.get("workerpool1") or [])
        kind, index = task.get("type", "workerpool0"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"CLUSTER_SPEC is not Vertex AI's cluster description: {e}") from None
    nnodes = len(chief[:1]) + len(workers)
    if nnodes <= 1:
        return Topology(nnodes=1, gpus_per_node=gpus)
    if kind not in ("workerpool0", "workerpool1"):
        raise ValueError(f"CLUSTER_SPEC: task type {kind!r} is no training replica")
    host, _, port = chief[0].rpartition(":")
    return Topology(
        nnodes=nnodes,
        gpus_per_node=gpus,
        master_addr=host or chief[0],
        master_port=int(port) if port.isdigit() else PORT_BASE,
        node_rank=0 if kind == "workerpool0" else 1 + index,
    )


def topology(env: Mapping[str, str], visible: int = 0) -> Topology:
    """The job's shape from SLURM's variables, or from Vertex AI's ``CLUSTER_SPEC`` (where
    ``visible``, the GPUs torch sees, are the replica's); a job with neither is one node."""
    if env.get("CLUSTER_SPEC") and not (env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")):
        return vertex_topology(env["CLUSTER_SPEC"], gpus_per_node(env, visible))
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
    """ms-swift's ``--deepspeed`` value. ``auto``: zero2 (the optimizer state and gradients
    sharded, enough for LoRA on a 4B model) on several GPUs, none on one; a named stage
    (``zero2``; ``zero3`` also shards the weights when the model does not fit one GPU;
    ``zero3_offload`` moves them and the optimizer to CPU memory) holds on any number of GPUs,
    one included; never on CPU (DeepSpeed needs a GPU)."""
    if choice not in DEEPSPEED_CHOICES:
        raise ValueError(f"deepspeed must be one of {DEEPSPEED_CHOICES}, not {choice!r}")
    if device == "cpu" or choice == "none" or (choice == "auto" and not topo.distributed):
        return None
    return "zero2" if choice == "auto" else choice


def launcher_env(topo: Topology, deepspeed: str | None = None) -> dict[str, str]:
    """Variables that make ``swift sft`` start torchrun over the job's GPUs and nodes: none for
    one process without DeepSpeed; ``NPROC_PER_NODE=1`` for DeepSpeed on one GPU (ms-swift
    initialises it through torchrun). ``NODE_RANK`` is set here where each node starts its own
    trainer (Vertex AI), else per srun task by :func:`node_env`."""
    if not topo.distributed and not deepspeed:
        return {}
    env = {"NPROC_PER_NODE": str(max(1, topo.gpus_per_node))}
    if topo.nnodes > 1:
        env.update(
            NNODES=str(topo.nnodes),
            MASTER_ADDR=str(topo.master_addr),
            MASTER_PORT=str(topo.master_port),
        )
        if topo.node_rank is not None:
            env["NODE_RANK"] = str(topo.node_rank)
    return env


def collectives_env(environ: Mapping[str, str]) -> dict[str, str]:
    """:data:`COLLECTIVES_ENV` less the variables ``environ`` already sets (those win)."""
    return {k: v for k, v in COLLECTIVES_ENV.items() if k not in environ}


def free_port() -> int:
    """A TCP port free on this machine now: torchrun's rendezvous on one node, so that two
    trainings sharing a machine do not both take torchrun's default 29500."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_env(env: Mapping[str, str]) -> dict[str, str]:
    """``NODE_RANK`` of the node running this task (``SLURM_NODEID`` of the srun step)."""
    rank = env.get("SLURM_NODEID", env.get("SLURM_PROCID", "0"))
    return {"NODE_RANK": str(int(rank))}


def node_command(cmd: list[str], topo: Topology, python: str = sys.executable) -> list[str]:
    """The command one job runs: ``cmd`` itself on one node, or where each node starts its own
    (``node_rank`` known: Vertex AI); on several SLURM nodes, ``srun`` starts one task per
    node (``--overlap``: it runs beside the job step that called it) and each task sets its
    ``NODE_RANK`` before running ``cmd``. Run it with :func:`srun_environ`."""
    if topo.nnodes <= 1 or topo.node_rank is not None:
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
