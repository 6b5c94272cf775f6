"""Run a GPU stage (train, merge, predict) as a Vertex AI CustomJob.

The launcher (:func:`run_remote`, called by ``drawtune.smk.run_stage`` when the profile gives
the rule a Vertex settings file) stages the stage's inputs (``drawtune.train.stages`` declares
how each travels) to
``gs://<bucket>/<prefix>/<run_id>/<local path>``, submits one CustomJob with the real
``google-cloud-aiplatform`` JobService client, logs its state and console link until it ends,
cancels it on Ctrl-C or SIGTERM, and downloads the outputs into the rule's output paths.

The worker (``drawtune.vertex.worker``, the container's command) runs the same stage as the
local profile.

A job carries its scheduling: a timeout from the rule's ``runtime``, a restart of the whole job
when a worker restarts (a training resumes from its checkpoints in the bucket), and the
machine's provisioning strategy (Spot, FLEX_START). Losing the connection to Vertex never
cancels a job: the launcher backs off and keeps asking until the job must have ended by its
timeout, and says so in the rule's log.
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
MAX_BACKOFF_S = 300.0  # the longest pause between state reads while Vertex does not answer
# beyond a job's timeout (and its queueing), how long it may take Vertex to end it
END_GRACE_S = 1800.0


def job_spec(
    settings: Settings,
    rule: str,
    name: str,
    task: dict,
    output_uri: str,
    timeout_s: float | None = None,
) -> dict:
    """The CustomJob, as a dict of aiplatform_v1 fields (pure; tests read it back).
    ``timeout_s``: the longest the job may run (the rule's ``runtime``); None: Vertex's 7
    days."""
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
        "disk_spec": {"boot_disk_type": m.disk_type(), "boot_disk_size_gb": m.boot_disk_gb},
        "container_spec": container,
    }
    pools = [pool]
    if m.replica_count > 1:  # Vertex: pool 0 is the chief, pool 1 the other replicas
        pools.append({**pool, "replica_count": m.replica_count - 1})
    spec = {"worker_pool_specs": pools, "base_output_directory": {"output_uri_prefix": output_uri}}
    scheduling = {"restart_job_on_worker_restart": settings.restart_job_on_worker_restart}
    if timeout_s:
        scheduling["timeout"] = {"seconds": int(timeout_s)}
    if m.strategy:
        scheduling["strategy"] = m.strategy
    if m.strategy == "FLEX_START" and m.max_wait_hours:
        scheduling["max_wait_duration"] = {"seconds": int(m.max_wait_hours * 3600)}
    spec["scheduling"] = scheduling
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
    request from going out, so they are ignored from here on. A cancel request Vertex does not
    answer is said so, with where to cancel the job by hand."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(s, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals are not ours to handle
            break
    log.error("%s: cancelling vertex job %s", reason, job_name)
    print(f"drawtune: {reason}: cancelling vertex job {job_name}", flush=True)
    for attempt in range(3):
        try:
            client.cancel_custom_job(name=job_name)
            break
        except Exception as e:
            if attempt == 2:
                raise StageError(
                    f"vertex job {job_name} could not be cancelled ({reason}; {e}): it may still "
                    f"run until its timeout. Cancel it in the console ({console_url(job_name)}) "
                    f"or with `gcloud ai custom-jobs cancel {job_name}`"
                ) from None
            log.warning("the cancel request failed (%s); trying again", e)
            time.sleep(min(poll, 2))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get_custom_job(name=job_name).state.name in TERMINAL:
                break
        except Exception:  # cancelled already; its end is only not confirmed
            pass
        time.sleep(min(poll, 2))
    raise StageError(f"vertex job {job_name} cancelled ({reason})") from None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def wait_for(
    client,
    job_name: str,
    poll: float,
    watch: FailureWatch | None = None,
    patience_s: float | None = None,
):
    """Poll until the job ends; log each new state. The job is cancelled on Ctrl-C, SIGTERM or
    SIGHUP, when Snakemake goes away, and when ``watch`` sees another rule fail.

    A state that cannot be read (the network or Vertex down) cancels nothing: the launcher
    waits, doubling the pause up to MAX_BACKOFF_S, and keeps asking for ``patience_s`` (the
    job's timeout and queueing: by then Vertex has ended it) since the last answer; then the
    rule fails with the job left to its timeout. Each step is said in the rule's log."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, raise_interrupt) for s in signals}
    chain = lineage()
    state = None
    lost_since = None  # time.monotonic() of the first failed read since the last answer
    pause = poll
    patience = patience_s if patience_s is not None else 7 * 24 * 3600 + END_GRACE_S
    try:
        while True:
            try:
                job = client.get_custom_job(name=job_name)
            except Exception as e:  # a network blip must neither orphan nor cancel the job
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    log.warning(
                        "no answer from Vertex AI about %s (%s). The job is NOT cancelled: it "
                        "runs on, and ends by its timeout at the latest. Asking again with "
                        "growing pauses (up to %.0f s) for %s more",
                        job_name, e, MAX_BACKOFF_S, _hours(patience),
                    )  # fmt: skip
                    print(f"drawtune: lost contact with Vertex AI ({e}); retrying", flush=True)
                elif now - lost_since >= patience:
                    raise StageError(
                        f"no answer from Vertex AI about vertex job {job_name} for "
                        f"{_hours(now - lost_since)}: it was not cancelled and has ended by its "
                        f"timeout. Its state and outputs: {console_url(job_name)}"
                    ) from None
                else:
                    log.warning(
                        "still no answer about %s (%s), %.0f s since the last; next try in %.0f s",
                        job_name, e, now - lost_since, pause,
                    )  # fmt: skip
                _pause(pause, chain, watch)
                pause = min(pause * 2, MAX_BACKOFF_S)
                continue
            if lost_since is not None:
                log.info(
                    "Vertex AI answers again about %s after %.0f s",
                    job_name,
                    time.monotonic() - lost_since,
                )
                lost_since, pause = None, poll
            if job.state.name != state:
                state = job.state.name
                log.info("vertex job %s: %s", job_name, state)
                print(f"drawtune: vertex job {job_name.rsplit('/', 1)[-1]}: {state}", flush=True)
            if state in TERMINAL:
                return job
            _pause(poll, chain, watch)
    except Interrupted as e:
        cancel(client, job_name, poll, e)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _pause(seconds: float, chain, watch: FailureWatch | None) -> None:
    """Sleep ``seconds``, in slices of at most two, raising Interrupted as soon as Snakemake
    has gone or ``watch`` sees another rule fail."""
    end = time.monotonic() + seconds
    while True:
        if orphaned(chain):
            raise Interrupted("Snakemake exited")
        failed = watch.failed_rule() if watch else None
        if failed:
            raise Interrupted(f"rule {failed} failed, so the workflow stops")
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 2.0))


def run_remote(
    *,
    settings_path,
    rule: str,
    name: str,
    stage: GpuStage,
    workdir=".",
    timeout_s: float | None = None,
) -> None:
    """Stage ``stage``'s inputs, run it as a CustomJob (``timeout_s``: the longest it may run,
    the rule's ``runtime``), download its outputs into their local paths. Raises StageError
    with the job's message and log tail when it fails."""
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
    # the run folder stays in the bucket, beside the staged files: a restarted job resumes there
    resume = {k: stager.uri_for(local[k]) for k in stage.fields_of("resume") if local[k]}
    for uri in resume.values():
        log.info("checkpoints in %s (a restarted or resubmitted job resumes from them)", uri)
    job_dir = gcs.join(run_uri, "vertex", rule, name)
    task = {
        "stage": stage.name,
        "kwargs": {**task_kwargs, **outputs, **resume},
        "log": gcs.join(job_dir, "worker.log"),
        "log_every": settings.log_copy_seconds,
    }
    # a log found there later is this job's own, from an attempt a worker restart cut short
    gcs.delete(task["log"], client)
    body = job_spec(settings, rule, name, task, job_dir, timeout_s)
    machine = settings.machine(rule)
    patience = (timeout_s or 7 * 24 * 3600) + machine.queue_hours() * 3600 + END_GRACE_S
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
            job = wait_for(jobs, job.name, settings.poll_seconds, watch, patience)
        except Interrupted as e:
            cancel(jobs, job.name, settings.poll_seconds, e)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if job.state.name != "JOB_STATE_SUCCEEDED":
        tail = (gcs.read_text(task["log"], client) or "").splitlines()[-30:]
        # through the logger: the rule's log file is held open by it (not in append mode)
        if tail:
            log.error("last lines of the vertex job's log (%s):\n%s", task["log"], "\n".join(tail))
        else:
            log.error("the vertex job left no log at %s (ended before its first copy)", task["log"])
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
