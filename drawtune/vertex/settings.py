"""The Vertex AI profile's settings (``profiles/vertex/vertex.yaml``): project, bucket, image and
each rule's machine."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import StageError
from . import gcs


@dataclass
class Machine:
    """One rule's Vertex AI machine: see profiles/vertex/vertex.yaml for each key."""

    machine_type: str = "a2-highgpu-1g"
    accelerator_type: str = "NVIDIA_TESLA_A100"
    accelerator_count: int = 1
    replica_count: int = 1
    boot_disk_gb: int = 200
    usd_per_hour: float = 0.0  # the machine's price, read by `drawtune estimate` only


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
        return cls(**data, machines=machines)

    def machine(self, rule: str) -> Machine:
        return self.machines.get(rule, Machine())

    def run_uri(self, workdir: Path) -> str:
        run_id = self.run_id or re.sub(r"[^A-Za-z0-9_.-]", "-", workdir.resolve().name)
        return gcs.join(f"gs://{self.bucket}", self.prefix, run_id)

    def endpoint(self) -> str:
        return self.api_endpoint or f"{self.region}-aiplatform.googleapis.com"

    def is_loopback(self) -> bool:
        return bool(re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?$", self.api_endpoint))


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
