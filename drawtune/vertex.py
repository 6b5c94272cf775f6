"""Run a GPU stage (train, merge, predict) as a Vertex AI CustomJob, and the job's worker.

The launcher (:func:`run_remote`, called by ``scripts/{train_adapter,merge_adapter,
predict_split}.py`` when the profile names a Vertex settings file) stages the rule's inputs to
``gs://<bucket>/<prefix>/<run_id>/<local path>``, submits one CustomJob with the real
``google-cloud-aiplatform`` JobService client, logs its state and console link until it ends,
cancels it on Ctrl-C or SIGTERM, and downloads the outputs into the rule's output paths.

The worker (``drawtune worker TASK``, the container's command) runs the same stage function as
the local profile, reading and writing through the ``/gcs/<bucket>/`` mount Vertex provides.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import gcs
from .convert import dump_jsonl, load_jsonl
from .stages import StageError

log = logging.getLogger("drawtune")

MOUNT_ENV = "DRAWTUNE_GCS_MOUNT"
TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}

# How each stage's arguments travel: inputs to stage (model: a local folder, a gs:// folder or
# a hub id; jsonl: rows whose images are staged too; path: a file or folder) and outputs.
STAGES = {
    "train": {
        "inputs": {
            "base": "model",
            "train_jsonl": "jsonl",
            "val_jsonl": "jsonl",
            "manifest_jsonl": "jsonl",
        },
        "outputs": ("adapter_out", "logging_out", "tensorboard_out", "telemetry_out"),
    },
    "merge": {"inputs": {"base": "model", "adapter": "path"}, "outputs": ("merged_out",)},
    "predict": {"inputs": {"model": "model", "dataset": "jsonl"}, "outputs": ("result_out",)},
}
RESULT_JSONL = {"predict": "result_out"}  # outputs whose image paths are mapped back


# --------------------------------------------------------------------------- settings
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


# --------------------------------------------------------------------------- staging
def _image_of(row: dict):
    return (row.get("images") or [None])[0]


def map_images(rows: list[dict], fn) -> list[dict]:
    """Rows with every image path (string or ``{"path": ...}`` in ``images``, or a manifest
    row's ``image``) replaced by ``fn(path)``."""
    out = []
    for row in rows:
        row = dict(row)
        if isinstance(row.get("image"), str):
            row["image"] = fn(row["image"])
        imgs = []
        for img in row.get("images") or []:
            if isinstance(img, dict):
                imgs.append({**img, "path": fn(img["path"])})
            else:
                imgs.append(fn(img))
        if "images" in row:
            row["images"] = imgs
        out.append(row)
    return out


class Stager:
    """Uploads local files under the run's folder, by content hash (MD5)."""

    def __init__(self, run_uri: str, workdir: Path, client):
        self.run_uri = run_uri
        self.workdir = workdir.resolve()
        self.client = client
        self.sent: list[str] = []
        self.skipped: list[str] = []
        self.back: dict[str, str] = {}  # staged gs:// image -> the local path rows used

    def uri_for(self, local) -> str:
        """Where a local path lives in the run's folder: its path relative to the working
        directory, or ``abs/<absolute path>`` for files outside it."""
        p = Path(os.path.abspath(local))
        try:
            rel = p.relative_to(self.workdir).as_posix()
        except ValueError:
            rel = "abs/" + p.as_posix().lstrip("/")
        return gcs.join(self.run_uri, rel)

    def stage(self, local) -> str:
        uri = self.uri_for(local)
        done = gcs.upload(local, uri, self.client)
        self.sent += done.sent
        self.skipped += done.skipped
        return uri

    def stage_jsonl(self, path, tmp: Path) -> str:
        """Stage every image a JSONL names, then the JSONL with gs:// image paths."""
        rows = load_jsonl(path)

        def up(img: str) -> str:
            # relative image paths resolve against the working directory, as in ms-swift
            local = Path(img) if Path(img).is_absolute() else self.workdir / img
            if not local.is_file():
                raise StageError(f"{path}: image {img} does not exist")
            uri = self.uri_for(local)
            if uri not in self.back:
                self.stage(local)
                self.back[uri] = img
            return uri

        staged = map_images(rows, up)
        out = tmp / (Path(path).name)
        dump_jsonl(staged, out)
        uri = self.uri_for(path)
        done = gcs.upload(out, uri, self.client)
        self.sent += done.sent
        self.skipped += done.skipped
        return uri

    def stage_model(self, model: str) -> str:
        """A local model folder is staged; gs:// folders and hub ids pass unchanged."""
        if model.startswith("gs://"):
            problems = gcs.check_model(model, self.client)
            if problems:
                raise StageError(f"model {model} is incomplete: " + "; ".join(problems))
            return model
        if Path(model).is_dir():
            return self.stage(model)
        return model


# --------------------------------------------------------------------------- the job
def job_spec(settings: Settings, rule: str, name: str, task: dict, output_uri: str) -> dict:
    """The CustomJob, as a dict of aiplatform_v1 fields (pure; tests read it back)."""
    m = settings.machine(rule)
    machine_spec = {"machine_type": m.machine_type}
    if m.accelerator_count:
        machine_spec["accelerator_type"] = m.accelerator_type
        machine_spec["accelerator_count"] = m.accelerator_count
    env = {"PYTHONUNBUFFERED": "1", **{str(k): str(v) for k, v in sorted(settings.env.items())}}
    container = {
        "image_uri": settings.image,
        "command": ["drawtune", "worker"],
        "args": [json.dumps(task, sort_keys=True)],
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    pool = {
        "machine_spec": machine_spec,
        "replica_count": 1,
        "disk_spec": {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": m.boot_disk_gb},
        "container_spec": container,
    }
    pools = [pool]
    if m.replica_count > 1:  # Vertex: pool 0 is the chief, pool 1 the other replicas
        pools.append({**pool, "replica_count": m.replica_count - 1})
    spec = {"worker_pool_specs": pools, "base_output_directory": {"output_uri_prefix": output_uri}}
    if settings.service_account:
        spec["service_account"] = settings.service_account
    display = re.sub(r"[^A-Za-z0-9_.-]", "-", f"drawtune-{rule}-{name}")[:128]
    return {"display_name": display, "job_spec": spec, "labels": {"drawtune-rule": rule}}


def job_client(settings: Settings):
    """The real JobService client: REST transport; credentials from the environment (ADC),
    anonymous only for a loopback endpoint (the tests' stand-in)."""
    from google.cloud import aiplatform_v1

    kwargs = {}
    if settings.is_loopback():
        from google.auth.credentials import AnonymousCredentials

        kwargs["credentials"] = AnonymousCredentials()
    return aiplatform_v1.JobServiceClient(
        transport="rest", client_options={"api_endpoint": settings.endpoint()}, **kwargs
    )


class Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _ppid(pid: int) -> int | None:
    """A process's parent (Linux /proc; None where it cannot be read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(a) == b"snakemake" for a in argv[:2])


def lineage() -> list[tuple[int, int]]:
    """``(pid, parent)`` from this process up to the child of the Snakemake process that
    started the rule (only this process where /proc is missing or no Snakemake is above)."""
    chain = [(os.getpid(), os.getppid())]
    parent = chain[0][1]
    for _ in range(8):
        if _is_snakemake(parent):
            return chain
        grand = _ppid(parent)
        if not grand or grand <= 1:
            break
        chain.append((parent, grand))
        parent = grand
    return chain[:1]


def orphaned(chain) -> bool:
    """True when a process of ``chain`` lost its parent (Snakemake or a shell between died)."""
    for pid, parent in chain:
        now = os.getppid() if pid == os.getpid() else _ppid(pid)
        if now != parent:
            return True
    return False


class FailureWatch:
    """Notices another rule's failure in the Snakemake run's log (``.snakemake/log``): without
    ``--keep-going`` Snakemake stops scheduling but waits for running jobs, which on Vertex
    would be paid for nothing."""

    def __init__(self, workdir: Path):
        logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
        self.path = logs[-1] if logs else None
        self.offset = self.path.stat().st_size if self.path else 0

    def failed_rule(self) -> str | None:
        if self.path is None:
            return None
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        m = re.search(r"^Error in rule (\S+?):", text, re.M)
        return m.group(1) if m else None


def cancel(client, job_name: str, poll: float, reason) -> None:
    """Cancel the job, wait (up to a minute) until it has ended, raise StageError. Further
    Ctrl-C/SIGTERM (Snakemake sends one after the user's Ctrl-C) must not stop the cancel
    request from going out, so they are ignored from here on."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(s, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals are not ours to handle
            break
    log.error("%s: cancelling vertex job %s", reason, job_name)
    print(f"drawtune: {reason}: cancelling vertex job {job_name}", flush=True)
    client.cancel_custom_job(name=job_name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get_custom_job(name=job_name).state.name in TERMINAL:
            break
        time.sleep(min(poll, 2))
    raise StageError(f"vertex job {job_name} cancelled ({reason})") from None


def wait_for(client, job_name: str, poll: float, watch: FailureWatch | None = None):
    """Poll until the job ends; log each new state. The job is cancelled on Ctrl-C, SIGTERM or
    SIGHUP, when Snakemake goes away, and when ``watch`` sees another rule fail."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, _raise_interrupt) for s in signals}
    chain = lineage()
    state = None
    errors = 0
    try:
        while True:
            try:
                job = client.get_custom_job(name=job_name)
                errors = 0
            except Exception as e:  # a network blip must not orphan a running job
                errors += 1
                if errors > 10:
                    raise Interrupted(f"the job's state could not be read: {e}") from None
                log.warning("reading the state of %s failed (%s); retrying", job_name, e)
                time.sleep(poll)
                continue
            if job.state.name != state:
                state = job.state.name
                log.info("vertex job %s: %s", job_name, state)
                print(f"drawtune: vertex job {job_name.rsplit('/', 1)[-1]}: {state}", flush=True)
            if state in TERMINAL:
                return job
            if orphaned(chain):
                raise Interrupted("Snakemake exited")
            failed = watch.failed_rule() if watch else None
            if failed:
                raise Interrupted(f"rule {failed} failed, so the workflow stops")
            time.sleep(poll)
    except Interrupted as e:
        cancel(client, job_name, poll, e)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def run_remote(
    *, settings_path, rule: str, name: str, stage: str, kwargs: dict, log_path, workdir="."
) -> None:
    """Stage inputs, run ``stage`` as a CustomJob, download its outputs into ``kwargs``'s
    output paths. Raises StageError with the job's message and log tail when it fails."""
    settings = Settings.load(settings_path)
    workdir = Path(workdir)
    watch = FailureWatch(workdir) if settings.cancel_on_failure else None
    client = gcs.client(settings.project)
    run_uri = settings.run_uri(workdir)
    stager = Stager(run_uri, workdir, client)
    spec = STAGES[stage]
    skip = {*spec["outputs"], "log_path", "run_dir"}  # the worker has its own log and run dir
    task_kwargs = {k: v for k, v in kwargs.items() if k not in skip}
    if "spec" in task_kwargs:
        task_kwargs["spec"] = dataclasses.asdict(task_kwargs["spec"])
    with tempfile.TemporaryDirectory() as tmp:
        for key, kind in spec["inputs"].items():
            value = kwargs.get(key)
            if value is None:
                continue
            if kind == "model":
                task_kwargs[key] = stager.stage_model(str(value))
            elif kind == "jsonl":
                task_kwargs[key] = stager.stage_jsonl(value, Path(tmp))
            else:
                task_kwargs[key] = stager.stage(value)
    log.info(
        "staged to %s: %d uploaded, %d unchanged", run_uri, len(stager.sent), len(stager.skipped)
    )
    for uri in stager.sent:
        log.info("uploaded %s", uri)
    outputs = {k: stager.uri_for(kwargs[k]) for k in spec["outputs"] if kwargs.get(k)}
    job_dir = gcs.join(run_uri, "vertex", rule, name)
    task = {
        "stage": stage,
        "kwargs": {**task_kwargs, **outputs},
        "log": gcs.join(job_dir, "worker.log"),
    }
    body = job_spec(settings, rule, name, task, job_dir)
    jobs = job_client(settings)
    from google.cloud import aiplatform_v1

    parent = f"projects/{settings.project}/locations/{settings.region}"
    # A signal during the create call is held until it returns: the job may already exist on
    # the server, and only its name (in the response) lets it be cancelled. From then on
    # Ctrl-C cancels the job, also between its submission and wait_for.
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    held: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in signals}
    try:
        job = jobs.create_custom_job(parent=parent, custom_job=aiplatform_v1.CustomJob(body))
        for s in signals:
            signal.signal(s, _raise_interrupt)
        try:
            if held:
                raise Interrupted(signal.Signals(held[0]).name)
            url = console_url(job.name)
            log.info("vertex job %s submitted: %s", job.name, url)
            print(f"drawtune: vertex job {job.name}\n  console: {url}", flush=True)
            job = wait_for(jobs, job.name, settings.poll_seconds, watch)
        except Interrupted as e:
            cancel(jobs, job.name, settings.poll_seconds, e)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if job.state.name != "JOB_STATE_SUCCEEDED":
        tail = (gcs.read_text(task["log"], client) or "").splitlines()[-30:]
        # through the logger: the rule's log file is held open by it (not in append mode)
        log.error("last lines of the vertex job's log (%s):\n%s", task["log"], "\n".join(tail))
        raise StageError(
            f"vertex job {job.name} ended {job.state.name}: {job.error.message or 'no message'}"
            f" ({url})\n" + "\n".join(tail[-15:])
        )
    for key, uri in outputs.items():
        gcs.download(uri, kwargs[key], client)
    if stage in RESULT_JSONL:
        path = kwargs[RESULT_JSONL[stage]]
        back = stager.back
        dump_jsonl(map_images(load_jsonl(path), lambda p: back.get(p, p)), path)
    log.info("vertex job %s succeeded; outputs downloaded", job.name)


# --------------------------------------------------------------------------- the worker
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


def _is_chief(cluster_spec: str | None) -> bool:
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
    chief = _is_chief(os.environ.get("CLUSTER_SPEC"))
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
    from . import stages
    from .coords import ResizeSpec
    from .smk import detect_device

    stage = task["stage"]
    spec = STAGES[stage]
    device = detect_device()
    gpus = 0
    if device != "cpu":
        import torch

        gpus = torch.cuda.device_count()
    env = cluster_env(os.environ.get("CLUSTER_SPEC"), gpus)
    os.environ.update(env)
    log.info("stage %s on %s (%d GPUs), torchrun env %s", stage, device, gpus, env)

    kwargs = {}
    for key, value in task["kwargs"].items():
        is_uri = isinstance(value, str) and value.startswith("gs://")
        kwargs[key] = mount_path(value) if is_uri else value
    if "spec" in kwargs:
        kwargs["spec"] = ResizeSpec(**kwargs["spec"])
    for key, kind in spec["inputs"].items():
        if kind == "jsonl" and kwargs.get(key):
            rows = map_images(load_jsonl(kwargs[key]), mount_path)
            local = tmp / f"{key}.jsonl"
            dump_jsonl(rows, local)
            kwargs[key] = str(local)
    if not chief:  # other nodes train too; only the chief writes outputs
        for key in spec["outputs"]:
            if kwargs.get(key):
                kwargs[key] = str(tmp / "discard" / key)
    result_key = RESULT_JSONL.get(stage)
    final_result = kwargs.get(result_key) if result_key else None
    if final_result:
        kwargs[result_key] = str(tmp / "result.jsonl")
    if stage == "train":
        kwargs["run_dir"] = str(tmp / "run")
        if gpus > 1 or "NNODES" in env:
            extra = dict(kwargs["train_cfg"].get("extra_args") or {})
            extra.setdefault("deepspeed", "zero2")
            kwargs["train_cfg"] = {**kwargs["train_cfg"], "extra_args": extra}
    for path in [*(kwargs.get(k) for k in spec["outputs"]), final_result]:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs["log_path"] = str(log_file)
    getattr(stages, stage)(**kwargs, device=device)
    if final_result and chief:
        rows = map_images(load_jsonl(kwargs[result_key]), lambda p: _to_uri(p))
        dump_jsonl(rows, final_result)


def _to_uri(path: str) -> str:
    """A mount path back to its gs:// location (other paths unchanged)."""
    mount = Path(os.environ.get(MOUNT_ENV, "/gcs"))
    try:
        rel = Path(path).relative_to(mount)
    except ValueError:
        return path
    return "gs://" + rel.as_posix()
