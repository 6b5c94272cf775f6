"""The Vertex AI job's worker (``drawtune worker TASK``, the container's command): runs the stage
the task names, reading and writing through the ``/gcs/<bucket>/`` mount Vertex provides."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl
from ..train.device import detect_device, gpu_count
from ..train.stages import from_task, stage_class
from . import gcs
from .staging import map_images

log = logging.getLogger("drawtune")

MOUNT_ENV = "DRAWTUNE_GCS_MOUNT"


def mount_path(uri: str, mount: str | None = None) -> str:
    """``gs://b/k`` -> ``/gcs/b/k`` (Vertex's Cloud Storage FUSE mount)."""
    mount = mount or os.environ.get(MOUNT_ENV, "/gcs")
    bucket, key = gcs.split_uri(uri)
    return str(Path(mount) / bucket / key)


def cluster_env(cluster_spec: str | None, gpus: int) -> dict:
    """ms-swift's torchrun variables from Vertex's ``CLUSTER_SPEC`` and the local GPU count.
    One replica: only ``NPROC_PER_NODE`` (when more than one GPU). Several: the chief (pool 0)
    is node 0 and ``MASTER_ADDR``; pool 1's replicas follow in order."""
    env = {}
    if gpus > 1:
        env["NPROC_PER_NODE"] = str(gpus)
    if not cluster_spec:
        return env
    spec = json.loads(cluster_spec)
    cluster, task = spec.get("cluster", {}), spec.get("task", {})
    chief = cluster.get("workerpool0") or []
    workers = cluster.get("workerpool1") or []
    if not chief or len(chief) + len(workers) < 2:
        return env
    host, _, port = chief[0].rpartition(":")
    rank = 0 if task.get("type") == "workerpool0" else 1 + int(task.get("index", 0))
    env.update(
        NNODES=str(len(chief) + len(workers)),
        NODE_RANK=str(rank),
        MASTER_ADDR=host,
        MASTER_PORT=port or "29500",
        NPROC_PER_NODE=str(max(gpus, 1)),
    )
    return env


def is_chief(cluster_spec: str | None) -> bool:
    """Only the chief (pool 0, or the only replica) writes outputs and the job's log."""
    if not cluster_spec:
        return True
    return json.loads(cluster_spec).get("task", {}).get("type", "workerpool0") == "workerpool0"


def _stopped(signum, frame):
    raise SystemExit(128 + signum)


def worker(task: dict) -> int:
    """Run one stage inside the job: gs:// arguments become mount paths. The job's log is
    copied to ``task["log"]`` however the stage ends, SIGTERM (cancel, preemption) included."""
    signal.signal(signal.SIGTERM, _stopped)  # Vertex stops a cancelled job with SIGTERM
    tmp = Path(tempfile.mkdtemp(prefix="drawtune-"))
    log_file = tmp / "worker.log"
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.FileHandler(log_file), logging.StreamHandler()],
        force=True,
    )
    chief = is_chief(os.environ.get("CLUSTER_SPEC"))
    rc = 1
    try:
        _run_stage(task, tmp, log_file, chief)
        rc = 0
    except StageError as e:
        log.error("%s", e)
    except Exception:
        log.exception("stage %s failed", task.get("stage"))
    except SystemExit as e:
        log.error("stage %s stopped by SIGTERM (job cancelled or preempted)", task.get("stage"))
        rc = e.code if isinstance(e.code, int) else 1
    finally:
        if chief:
            dest = Path(mount_path(task["log"]))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(log_file.read_bytes())
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
        shutil.rmtree(tmp, ignore_errors=True)  # scratch: a training run dir, mapped JSONL
    return rc


def _run_stage(task: dict, tmp: Path, log_file: Path, chief: bool) -> None:
    device = detect_device()
    gpus = gpu_count(device)
    env = cluster_env(os.environ.get("CLUSTER_SPEC"), gpus)
    os.environ.update(env)
    log.info("stage %s on %s (%d GPUs), torchrun env %s", task["stage"], device, gpus, env)

    cls = stage_class(task["stage"])
    kwargs = {}
    for key, value in task["kwargs"].items():
        is_uri = isinstance(value, str) and value.startswith("gs://")
        kwargs[key] = mount_path(value) if is_uri else value
    for key in cls.fields_of("jsonl"):
        if kwargs.get(key):
            rows = map_images(load_jsonl(kwargs[key]), mount_path)
            local = tmp / f"{key}.jsonl"
            dump_jsonl(rows, local)
            kwargs[key] = str(local)
    if not chief:  # other nodes train too; only the chief writes outputs
        for key in cls.fields_of("output", "result"):
            if kwargs.get(key):
                kwargs[key] = str(tmp / "discard" / key)
    results = {}  # result field -> where its rows go with gs:// image paths
    for key in cls.fields_of("result"):
        results[key] = kwargs[key]
        kwargs[key] = str(tmp / f"{key}.jsonl")
    for key in cls.fields_of("log"):
        kwargs[key] = str(log_file)
    for key in cls.fields_of("scratch"):
        kwargs[key] = str(tmp / key)
    for key in [*cls.fields_of("output"), *results]:
        path = results.get(key) or kwargs.get(key)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    stage = from_task(task["stage"], kwargs).in_job(distributed=gpus > 1 or "NNODES" in env)
    stage.run(device=device)
    if chief:
        for key, final in results.items():
            rows = map_images(load_jsonl(getattr(stage, key)), to_uri)
            dump_jsonl(rows, final)


def to_uri(path: str) -> str:
    """A mount path back to its gs:// location (other paths unchanged)."""
    mount = Path(os.environ.get(MOUNT_ENV, "/gcs"))
    try:
        rel = Path(path).relative_to(mount)
    except ValueError:
        return path
    return "gs://" + rel.as_posix()
