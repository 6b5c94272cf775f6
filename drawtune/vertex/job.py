"""Run a GPU stage (train, merge, predict) as a Vertex AI CustomJob.

The launcher (:func:`run_remote`, called by ``drawtune.smk.run_stage`` when the profile gives
the rule a Vertex settings file) stages the stage's inputs (``drawtune.train.stages`` declares
how each travels) to
``gs://<bucket>/<prefix>/<run_id>/<local path>``, submits one CustomJob with the real
``google-cloud-aiplatform`` JobService client, logs its state and console link until it ends,
cancels it on Ctrl-C or SIGTERM, and downloads the outputs into the rule's output paths.

The worker (``drawtune.vertex.worker``, the container's command) runs the same stage as the
local profile.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import tempfile
import time
from pathlib import Path

from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl
from ..train.guard import lineage, orphaned
from ..train.stages import GpuStage
from . import gcs
from .settings import Settings, console_url
from .staging import Stager, map_images
from .watch import FailureWatch, Interrupted, raise_interrupt

log = logging.getLogger("drawtune")

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


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
    old = {s: signal.signal(s, raise_interrupt) for s in signals}
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


def run_remote(*, settings_path, rule: str, name: str, stage: GpuStage, workdir=".") -> None:
    """Stage ``stage``'s inputs, run it as a CustomJob, download its outputs into their local
    paths. Raises StageError with the job's message and log tail when it fails."""
    settings = Settings.load(settings_path)
    workdir = Path(workdir)
    watch = FailureWatch(workdir) if settings.cancel_on_failure else None
    client = gcs.client(settings.project)
    run_uri = settings.run_uri(workdir)
    stager = Stager(run_uri, workdir, client)
    local = stage.to_task()
    # the worker has its own log and run folder; outputs are added below as their gs:// places
    sent = stage.fields_of("model", "jsonl", "path", "param")
    task_kwargs = {k: v for k, v in local.items() if k in sent}
    with tempfile.TemporaryDirectory() as tmp:
        for key in stage.fields_of("model", "jsonl", "path"):
            value = local[key]
            if value is None:
                continue
            kind = stage.io_of(key)
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
    outputs = {k: stager.uri_for(local[k]) for k in stage.fields_of("output", "result") if local[k]}
    job_dir = gcs.join(run_uri, "vertex", rule, name)
    task = {
        "stage": stage.name,
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
            signal.signal(s, raise_interrupt)
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
        gcs.download(uri, local[key], client)
    back = stager.back
    for key in stage.fields_of("result"):
        path = local[key]
        dump_jsonl(map_images(load_jsonl(path), lambda p: back.get(p, p)), path)
    log.info("vertex job %s succeeded; outputs downloaded", job.name)
