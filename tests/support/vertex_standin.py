"""A local stand-in for the Vertex AI JobService REST endpoint (create, get, cancel CustomJobs).

The real ``google-cloud-aiplatform`` client (REST transport) is pointed at it on loopback. It
records every CustomJob it receives, decodes it with aiplatform's own message types, and runs
the first worker pool's container command on this machine: before the run it mirrors the
bucket from the Cloud Storage emulator into a folder that plays Vertex's ``/gcs`` mount
(``DRAWTUNE_GCS_MOUNT``), afterwards it uploads what the job wrote there. The job then reports
SUCCEEDED, FAILED (with Vertex's message) or CANCELLED.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.cloud import aiplatform_v1

from drawtune.vertex import gcs

# The test copy of profiles/vertex/vertex.yaml: a project, region, bucket and image that exist
# only here (the bucket is the GCS emulator's).
SETTINGS = {
    "project": "test-project",
    "region": "us-central1",
    "bucket": "drawtune-test",
    "image": "us-central1-docker.pkg.dev/test-project/drawtune/train:ci",
    "service_account": "trainer@test-project.iam.gserviceaccount.com",
}

JOBS = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/customJobs$")
JOB = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/customJobs/[^/:]+)(:cancel)?$")
State = aiplatform_v1.JobState


class JobService:
    def __init__(self, bucket: str, mount: Path, path_env: str):
        self.bucket = bucket
        self.mount = mount
        self.path_env = path_env
        self.jobs: dict[str, aiplatform_v1.CustomJob] = {}
        self.received: list[dict] = []  # the raw JSON bodies of create calls, in order
        self.cancelled: list[str] = []
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}  # job -> how often its worker was started again
        self._preempting: set[str] = set()
        self.outage = threading.Event()  # set: Vertex does not answer state reads
        self.reads_refused = 0
        self.scratch = mount.parent / "scratch"  # the workers' TMPDIR: a container's local disk
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.count = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                proc.kill()
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ requests
    def create(self, parent: str, body: dict) -> aiplatform_v1.CustomJob:
        job = aiplatform_v1.CustomJob.from_json(json.dumps(body), ignore_unknown_fields=False)
        with self.lock:
            self.count += 1
            self.received.append(body)
            job.name = f"{parent}/customJobs/{1000 + self.count}"
            job.state = State.JOB_STATE_PENDING
            self.jobs[job.name] = job
        threading.Thread(target=self._run, args=(job.name,), daemon=True).start()
        return job

    def cancel(self, name: str) -> None:
        with self.lock:
            self.cancelled.append(name)
            job = self.jobs[name]
            if job.state in (State.JOB_STATE_SUCCEEDED, State.JOB_STATE_FAILED):
                return
            job.state = State.JOB_STATE_CANCELLING
            proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)

    def preempt(self, name: str) -> None:
        """The job's machine goes away (Spot preemption, maintenance): its worker is killed
        without warning (SIGKILL, no log copied at the end) and started again."""
        with self.lock:
            self._preempting.add(name)
            proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)

    def kill(self, name: str) -> None:
        """The worker is killed for good (the OOM killer): the job fails with status 137."""
        with self.lock:
            proc = self.procs[name]
        os.killpg(proc.pid, signal.SIGKILL)

    # ------------------------------------------------------------------ running a job
    def _sync_down(self, client, own: str) -> None:
        """The mount shows the bucket: every object, and under the job's own folder (``own``)
        nothing else (what the launcher removed is gone here too)."""
        root = self.mount / self.bucket
        names = set()
        for blob in client.list_blobs(self.bucket):
            names.add(blob.name)
            dest = root / blob.name
            if dest.is_file() and gcs.md5_b64(dest) == blob.md5_hash:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(dest))
        mine = root / own
        for f in sorted(mine.rglob("*")) if mine.is_dir() else ():
            if f.is_file() and f.relative_to(root).as_posix() not in names:
                f.unlink()

    def _run(self, name: str) -> None:
        job = self.jobs[name]
        client = gcs.client()
        out_dir = job.job_spec.base_output_directory.output_uri_prefix
        self._sync_down(client, gcs.split_uri(out_dir)[1])
        container = job.job_spec.worker_pool_specs[0].container_spec
        env = dict(os.environ, PATH=self.path_env, DRAWTUNE_GCS_MOUNT=str(self.mount))
        env["TMPDIR"] = str(self.scratch)
        # what Vertex tells every replica of a one-replica job
        env["CLUSTER_SPEC"] = json.dumps(
            {
                "cluster": {"workerpool0": ["cmle-training-workerpool0-0:2222"]},
                "environment": "cloud",
                "task": {"type": "workerpool0", "index": 0},
            }
        )
        env.update({e.name: e.value for e in container.env})
        out = self.output_path(name)
        while True:
            with self.lock:
                if job.state == State.JOB_STATE_CANCELLING:
                    job.state = State.JOB_STATE_CANCELLED
                    return
                job.state = State.JOB_STATE_RUNNING
                with open(out, "a") as f:
                    proc = subprocess.Popen(
                        [*container.command, *container.args],
                        env=env,
                        cwd=self.mount.parent,
                        stdout=f,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                self.procs[name] = proc
            rc = proc.wait()
            with self.lock:
                if name not in self._preempting:
                    break
                self._preempting.discard(name)
                self.restarts[name] = self.restarts.get(name, 0) + 1
        if (self.mount / self.bucket).is_dir():
            gcs.upload(self.mount / self.bucket, f"gs://{self.bucket}", client)
        with self.lock:
            if job.state == State.JOB_STATE_CANCELLING:
                job.state = State.JOB_STATE_CANCELLED
            elif rc == 0:
                job.state = State.JOB_STATE_SUCCEEDED
            else:
                job.state = State.JOB_STATE_FAILED
                status = 128 - rc if rc < 0 else rc  # killed by a signal: as a shell says it
                job.error = {
                    "code": 3,
                    "message": f"The replica workerpool0-0 exited with a non-zero status of "
                    f"{status}. To find out more about why your job exited please check the logs",
                }

    def output_path(self, name: str) -> Path:
        """Where the job's container output (stdout and stderr) is written."""
        return self.mount.parent / f"job-{name.rsplit('/', 1)[-1]}.out"

    def wait_output(self, name: str, text: str, timeout: float = 120) -> None:
        """Wait until the job's container has written ``text``."""
        deadline = time.monotonic() + timeout
        path = self.output_path(name)
        while not (path.is_file() and text in path.read_text(errors="replace")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} never wrote {text!r}")
            time.sleep(0.1)

    def wait_running(self, skip=(), timeout: float = 180) -> str:
        """The name of the first job not in ``skip`` that reached RUNNING."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for name, job in self.jobs.items():
                    if name not in skip and job.state == State.JOB_STATE_RUNNING:
                        return name
            time.sleep(0.1)
        raise TimeoutError("no job started")

    # ------------------------------------------------------------------ HTTP
    def _handler(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, text: str):
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _path(self):
                return self.path.split("?", 1)[0]

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                m = JOBS.match(self._path())
                if m:
                    job = service.create(m.group(1), body)
                    return self._send(200, aiplatform_v1.CustomJob.to_json(job))
                m = JOB.match(self._path())
                if m and m.group(2) and m.group(1) in service.jobs:
                    service.cancel(m.group(1))
                    return self._send(200, "{}")
                self._send(404, json.dumps({"error": {"code": 404, "message": self.path}}))

            def do_GET(self):
                if service.outage.is_set():
                    service.reads_refused += 1
                    msg = {"error": {"code": 503, "message": "down", "status": "UNAVAILABLE"}}
                    return self._send(503, json.dumps(msg))
                m = JOB.match(self._path())
                if m and not m.group(2) and m.group(1) in service.jobs:
                    with service.lock:
                        text = aiplatform_v1.CustomJob.to_json(service.jobs[m.group(1)])
                    return self._send(200, text)
                self._send(404, json.dumps({"error": {"code": 404, "message": self.path}}))

        return Handler
