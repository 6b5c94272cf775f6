"""The Vertex AI job's worker (``drawtune worker TASK``, the container's command): runs the stage
the task names, reading and writing through the ``/gcs/<bucket>/`` mount Vertex provides.

The job's log is copied to the bucket every ``log_every`` seconds while the stage runs, so a
worker killed without warning (the OOM killer, SIGKILL) leaves its log up to the last copy for
the launcher to show. A training run's checkpoints live in the bucket (the stage's ``resume``
field), so a worker restarted on another machine, after a Spot preemption or maintenance,
resumes from the last complete one; its log continues the earlier attempt's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl
from ..train.device import detect_device, gpu_count
from ..train.stages import from_task, stage_class
from . import gcs
from .staging import map_images

log = logging.getLogger("drawtune")

MOUNT_ENV = "DRAWTUNE_GCS_MOUNT"
LOG_EVERY_S = 30.0
RESTARTED = "--- drawtune worker restarted: the lines above are the earlier attempt's ---"


def mount_path(uri: str, mount: str | None = None) -> str:
    """``gs://b/k`` -> ``/gcs/b/k`` (Vertex's Cloud Storage FUSE mount)."""
    mount = mount or os.environ.get(MOUNT_ENV, "/gcs")
    bucket, key = gcs.split_uri(uri)
    return str(Path(mount) / bucket / key)


def is_chief(cluster_spec: str | None) -> bool:
    """Only the chief (pool 0, or the only replica) writes outputs and the job's log."""
    if not cluster_spec:
        return True
    return json.loads(cluster_spec).get("task", {}).get("type", "workerpool0") == "workerpool0"


def _stopped(signum, frame):
    raise SystemExit(128 + signum)


class LogCopier:
    """Copies the worker's log file to its place in the bucket (through the mount) every
    ``every`` seconds while the stage runs, and once more when stopped."""

    def __init__(self, src: Path, dest: Path, every: float):
        self.src, self.dest, self.every = src, dest, every
        self.stop_event = threading.Event()
        self.copied = -1
        self.thread = threading.Thread(target=self._loop, name="log-copier", daemon=True)

    def copy(self) -> None:
        try:
            data = self.src.read_bytes()
            if len(data) != self.copied:
                self.dest.parent.mkdir(parents=True, exist_ok=True)
                self.dest.write_bytes(data)
                self.copied = len(data)
        except OSError as e:  # the mount briefly unavailable: the next copy catches up
            log.warning("copying the log to %s failed: %s", self.dest, e)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.every):
            self.copy()

    def start(self) -> LogCopier:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.every + 5)
        self.copy()


def scratch_dir(task: dict) -> Path:
    """The worker's local folder: named after the task, so a restarted worker maps the same
    inputs to the same paths and its training command (the resume fingerprint) is unchanged."""
    digest = hashlib.sha256(json.dumps(task, sort_keys=True).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"drawtune-{digest}"


def worker(task: dict) -> int:
    """Run one stage inside the job: gs:// arguments become mount paths. The job's log is
    copied to ``task["log"]`` while the stage runs and however it ends, SIGTERM (cancel,
    preemption) included."""
    signal.signal(signal.SIGTERM, _stopped)  # Vertex stops a cancelled job with SIGTERM
    tmp = scratch_dir(task)
    tmp.mkdir(parents=True, exist_ok=True)
    log_file = tmp / "worker.log"
    chief = is_chief(os.environ.get("CLUSTER_SPEC"))
    dest = Path(mount_path(task["log"]))
    earlier = dest.read_bytes() if chief and dest.is_file() else b""
    # the launcher removes the log before it submits a job: one here is this job's, written by
    # an attempt that a restart (preemption, maintenance) cut short
    log_file.write_bytes(earlier + (f"{RESTARTED}\n".encode() if earlier else b""))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.FileHandler(log_file), logging.StreamHandler()],
        force=True,
    )
    copier = LogCopier(log_file, dest, float(task.get("log_every") or LOG_EVERY_S))
    if chief:
        copier.start()
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
            copier.stop()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
            root.removeHandler(handler)
            handler.close()
        shutil.rmtree(tmp, ignore_errors=True)  # scratch: mapped JSONL, discarded outputs
    return rc


def _run_stage(task: dict, tmp: Path, log_file: Path, chief: bool) -> None:
    device = detect_device()
    gpus = gpu_count(device)
    role = "chief" if chief else "replica"
    spec = os.environ.get("CLUSTER_SPEC", "")
    log.info(
        "stage %s on %s (%d GPUs), %s; CLUSTER_SPEC %s", task["stage"], device, gpus, role, spec
    )

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
    for key in [*cls.fields_of("output"), *results]:
        path = results.get(key) or kwargs.get(key)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    # the run folder (cls.fields_of("resume")) stays at its mount path, in the bucket
    stage = from_task(task["stage"], kwargs).in_job(chief=chief)
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
