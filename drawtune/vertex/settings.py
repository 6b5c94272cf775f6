"""The Vertex AI profile's settings (``profiles/vertex/vertex.yaml``): project, bucket, image and
each rule's machine."""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import StageError
from . import gcs

# Machine families whose boot disk must be Hyperdisk (no Persistent Disk): A3 Ultra, A4, A4X
# and G4 ("For A3U machines the default value is hyperdisk-balanced", aiplatform_v1.DiskSpec).
HYPERDISK_FAMILIES = ("a3-ultragpu", "a4-", "a4x-", "g4-")
STRATEGIES = ("", "STANDARD", "SPOT", "FLEX_START")
# where a working copy keeps the staging folder name it made for itself (run_id left empty)
RUN_ID_FILE = Path(".snakemake") / "drawtune" / "vertex-run.json"


@dataclass
class Machine:
    """One rule's Vertex AI machine: see profiles/vertex/vertex.yaml for each key."""

    machine_type: str = "a2-highgpu-1g"
    accelerator_type: str = "NVIDIA_TESLA_A100"
    accelerator_count: int = 1
    replica_count: int = 1
    boot_disk_gb: int = 200
    boot_disk_type: str = ""  # empty: by machine family (disk_type)
    strategy: str = ""  # empty: Vertex's default (STANDARD); SPOT, FLEX_START
    max_wait_hours: float = 0.0  # FLEX_START: how long to queue for machines; 0: Vertex's 24 h
    usd_per_hour: float = 0.0  # the machine's price, read by `drawtune estimate` only

    def disk_type(self) -> str:
        """``boot_disk_type``, or the one the machine family takes: ``hyperdisk-balanced`` for
        A3 Ultra, A4, A4X and G4 (they have no Persistent Disk), ``pd-ssd`` otherwise."""
        if self.boot_disk_type:
            return self.boot_disk_type
        if self.machine_type.startswith(HYPERDISK_FAMILIES):
            return "hyperdisk-balanced"
        return "pd-ssd"

    def queue_hours(self) -> float:
        """How long a job of this machine may wait for its machines before it runs."""
        if self.strategy == "FLEX_START":
            return self.max_wait_hours or 24.0
        return 0.0


@dataclass
class Settings:
    """The Vertex AI profile's settings (profiles/vertex/vertex.yaml); nothing secret."""

    project: str
    region: str
    bucket: str
    image: str
    prefix: str = "drawtune"
    run_id: str = ""
    service_account: str = ""
    poll_seconds: float = 30.0
    cancel_on_failure: bool = True
    restart_job_on_worker_restart: bool = True
    log_copy_seconds: float = 30.0
    api_endpoint: str = ""
    env: dict = field(default_factory=dict)
    machines: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path) -> Settings:
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise StageError(f"{path}: unknown keys {sorted(unknown)}")
        missing = [k for k in ("project", "region", "bucket", "image") if not data.get(k)]
        if missing:
            raise StageError(f"{path}: set {', '.join(missing)}")
        machines = {}
        for rule, spec in (data.pop("machines", None) or {}).items():
            bad = set(spec or {}) - set(Machine.__dataclass_fields__)
            if bad:
                raise StageError(f"{path}: machines.{rule}: unknown keys {sorted(bad)}")
            machines[rule] = Machine(**(spec or {}))
            if machines[rule].strategy not in STRATEGIES:
                raise StageError(
                    f"{path}: machines.{rule}.strategy: {machines[rule].strategy!r} is not one "
                    f"of {', '.join(s for s in STRATEGIES if s)} (or empty)"
                )
        return cls(**data, machines=machines)

    def machine(self, rule: str) -> Machine:
        return self.machines.get(rule, Machine())

    def run_uri(self, workdir: Path) -> str:
        run_id = self.run_id or own_run_id(workdir)
        return gcs.join(f"gs://{self.bucket}", self.prefix, run_id)

    def endpoint(self) -> str:
        return self.api_endpoint or f"{self.region}-aiplatform.googleapis.com"

    def is_loopback(self) -> bool:
        return bool(re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?$", self.api_endpoint))


def own_run_id(workdir: Path) -> str:
    """The staging folder of a working copy whose ``run_id`` is empty: its folder's name and a
    random suffix, made once and kept in ``.snakemake/drawtune/vertex-run.json`` with the
    copy's absolute path. A copy elsewhere (``cp -r``, another clone with the same name) makes
    its own, so two copies never share staged inputs, outputs or checkpoints by accident."""
    workdir = Path(workdir).resolve()
    record = workdir / RUN_ID_FILE
    record.parent.mkdir(parents=True, exist_ok=True)
    # several rules stage at once: one at a time reads or makes the record
    with open(record.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            kept = json.loads(record.read_text())
            if kept.get("path") == str(workdir) and kept.get("run_id"):
                return str(kept["run_id"])
        except (OSError, ValueError, AttributeError):
            pass  # none yet, or one copied from elsewhere: this copy makes its own
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", workdir.name)
        made = {"run_id": f"{name}-{secrets.token_hex(4)}", "path": str(workdir)}
        tmp = record.with_name(f"{record.name}.{os.getpid()}")
        tmp.write_text(json.dumps(made, indent=1) + "\n")
        os.replace(tmp, record)
        return made["run_id"]


def console_url(job_name: str) -> str:
    """``projects/P/locations/R/customJobs/ID`` -> its page in the Cloud console."""
    m = re.match(r"projects/([^/]+)/locations/([^/]+)/customJobs/([^/]+)$", job_name)
    if not m:
        return ""
    project, region, job_id = m.groups()
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/{job_id}"
        f"/cpu?project={project}"
    )
