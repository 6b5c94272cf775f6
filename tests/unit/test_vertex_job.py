"""The Vertex AI profile without a cloud: settings, job specs, cluster mapping, mount paths and
the training image's pins."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib

import pytest
import yaml
from conftest import ROOT
from vertex_standin import SETTINGS

from drawtune.errors import StageError
from drawtune.vertex import job as vertex_job
from drawtune.vertex import staging, worker
from drawtune.vertex.settings import Machine, Settings, console_url
from drawtune.vertex.watch import Interrupted


# --------------------------------------------------------------------------- unit
def test_shipped_settings_load_and_name_every_gpu_rule():
    s = Settings.load(ROOT / "profiles/vertex/vertex.yaml")
    assert set(s.machines) == {"train_adapter", "merge_adapter", "predict_split"}
    assert s.machine("train_adapter").accelerator_type == "NVIDIA_TESLA_A100"
    assert s.endpoint() == "europe-west4-aiplatform.googleapis.com" and not s.is_loopback()
    profile = yaml.safe_load((ROOT / "profiles/vertex/config.yaml").read_text())
    for rule in ("train_adapter", "merge_adapter", "predict_split"):
        assert profile["set-resources"][rule]["vertex"] == "profiles/vertex/vertex.yaml"


def test_settings_reject_unknown_and_missing_keys(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text(yaml.safe_dump({**SETTINGS, "zone": "x"}))
    with pytest.raises(StageError, match="unknown keys \\['zone'\\]"):
        Settings.load(f)
    f.write_text(yaml.safe_dump({k: v for k, v in SETTINGS.items() if k != "bucket"}))
    with pytest.raises(StageError, match="set bucket"):
        Settings.load(f)
    f.write_text(yaml.safe_dump({**SETTINGS, "machines": {"train_adapter": {"gpus": 2}}}))
    with pytest.raises(StageError, match="machines.train_adapter"):
        Settings.load(f)


def test_job_spec_two_replicas_of_two_gpus():
    s = Settings(
        **SETTINGS,
        env={"HF_ENDPOINT": "https://hf.example"},
        machines={
            "train_adapter": Machine(
                machine_type="a2-highgpu-2g", accelerator_count=2, replica_count=2
            )
        },
    )
    spec = vertex_job.job_spec(s, "train_adapter", "lora_r8", {"stage": "train"}, "gs://b/out")
    pools = spec["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 1]  # chief + one more replica
    assert pools[0]["machine_spec"] == {
        "machine_type": "a2-highgpu-2g",
        "accelerator_type": "NVIDIA_TESLA_A100",
        "accelerator_count": 2,
    }
    c = pools[0]["container_spec"]
    assert c["command"] == ["drawtune", "worker"] and json.loads(c["args"][0]) == {"stage": "train"}
    assert {"name": "HF_ENDPOINT", "value": "https://hf.example"} in c["env"]
    assert spec["job_spec"]["service_account"] == SETTINGS["service_account"]
    assert spec["job_spec"]["base_output_directory"] == {"output_uri_prefix": "gs://b/out"}
    assert spec["display_name"] == "drawtune-train_adapter-lora_r8"
    one = vertex_job.job_spec(Settings(**SETTINGS), "predict_split", "x", {}, "gs://b/o")
    assert len(one["job_spec"]["worker_pool_specs"]) == 1


def test_only_the_chief_writes_outputs_and_the_log():
    spec = {
        "cluster": {"workerpool0": ["cmle-chief:2222"], "workerpool1": ["w0:2222"]},
        "task": {"type": "workerpool1", "index": 0},
    }
    single = {"cluster": {"workerpool0": ["h:1"]}, "task": {"type": "workerpool0", "index": 0}}
    assert worker.is_chief(None) and worker.is_chief(json.dumps(single))
    assert not worker.is_chief(json.dumps(spec))


def test_job_scheduling_from_the_rules_runtime_and_the_machines_strategy():
    """Timeout = the rule's runtime; the whole job restarts when a worker does (the training
    resumes from its checkpoints in the bucket); Spot or FLEX_START where the machine says."""
    from google.cloud import aiplatform_v1

    s = Settings(
        **SETTINGS,
        machines={
            "train_adapter": Machine(strategy="SPOT"),
            "predict_split": Machine(strategy="FLEX_START", max_wait_hours=2),
        },
    )
    spec = vertex_job.job_spec(s, "train_adapter", "x", {}, "gs://b/o", timeout_s=1440 * 60)
    assert spec["job_spec"]["scheduling"] == {
        "restart_job_on_worker_restart": True,
        "timeout": {"seconds": 86400},
        "strategy": "SPOT",
    }
    job = aiplatform_v1.CustomJob(spec)  # what the client sends
    sent = json.loads(aiplatform_v1.CustomJob.to_json(job, use_integers_for_enums=False))
    sched = sent["jobSpec"]["scheduling"]
    assert (sched["timeout"], sched["restartJobOnWorkerRestart"]) == ("86400s", True)
    assert sched["strategy"] == "SPOT"
    flex = vertex_job.job_spec(s, "predict_split", "x", {}, "gs://b/o", timeout_s=600)
    assert flex["job_spec"]["scheduling"]["strategy"] == "FLEX_START"
    assert flex["job_spec"]["scheduling"]["max_wait_duration"] == {"seconds": 7200}
    assert s.machine("predict_split").queue_hours() == 2 and Machine().queue_hours() == 0
    plain = vertex_job.job_spec(Settings(**SETTINGS, restart_job_on_worker_restart=False),
                                "merge_adapter", "x", {}, "gs://b/o")  # fmt: skip
    assert plain["job_spec"]["scheduling"] == {"restart_job_on_worker_restart": False}


def test_boot_disk_type_by_machine_family_or_setting():
    def disk(**machine):
        s = Settings(**SETTINGS, machines={"train_adapter": Machine(**machine)})
        pool = vertex_job.job_spec(s, "train_adapter", "x", {}, "gs://b/o")["job_spec"]
        return pool["worker_pool_specs"][0]["disk_spec"]["boot_disk_type"]

    assert disk(machine_type="a2-highgpu-1g") == "pd-ssd"
    assert disk(machine_type="a3-highgpu-8g") == "pd-ssd"
    # A3 Ultra, A4 and A4X take no Persistent Disk
    assert disk(machine_type="a3-ultragpu-8g") == "hyperdisk-balanced"
    assert disk(machine_type="a4-highgpu-8g") == "hyperdisk-balanced"
    assert disk(machine_type="a4x-highgpu-4g") == "hyperdisk-balanced"
    assert disk(machine_type="a3-ultragpu-8g", boot_disk_type="pd-standard") == "pd-standard"


def test_unknown_strategy_is_refused(tmp_path):
    f = tmp_path / "v.yaml"
    f.write_text(yaml.safe_dump({**SETTINGS, "machines": {"train_adapter": {"strategy": "spot"}}}))
    with pytest.raises(StageError, match=r"machines.train_adapter.strategy: 'spot' is not one of"):
        Settings.load(f)


def test_each_working_copy_stages_under_its_own_run_id(tmp_path):
    """run_id left empty: two clones with the same folder name, or a copy of one, never share a
    staging folder; one copy keeps its own from run to run."""
    from concurrent.futures import ThreadPoolExecutor

    from drawtune.vertex.settings import own_run_id

    a, b = tmp_path / "x" / "drawtune", tmp_path / "y" / "drawtune"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    s = Settings(**SETTINGS)
    with ThreadPoolExecutor(4) as pool:  # three rules staging at once agree on one
        ids = set(pool.map(lambda _: own_run_id(a), range(8)))
    assert len(ids) == 1
    first = ids.pop()
    assert re.fullmatch(r"drawtune-[0-9a-f]{8}", first)
    assert own_run_id(a) == first
    assert s.run_uri(a) == f"gs://{SETTINGS['bucket']}/drawtune/{first}"
    assert own_run_id(b) not in (first, None)
    copy = tmp_path / "z" / "drawtune"
    shutil.copytree(a, copy)  # its record names the original's folder
    assert own_run_id(copy) != first and own_run_id(a) == first
    assert Settings(**SETTINGS, run_id="shared").run_uri(a).endswith("/drawtune/shared")


def test_settings_file_found_from_the_working_directory_or_the_workflow(tmp_path, monkeypatch):
    from drawtune.smk import settings_file

    repo, elsewhere = tmp_path / "repo", tmp_path / "data"
    (repo / "profiles/vertex").mkdir(parents=True)
    (repo / "profiles/vertex/vertex.yaml").write_text("x")
    elsewhere.mkdir()
    rel = "profiles/vertex/vertex.yaml"
    assert settings_file(rel, repo, repo) == repo / rel
    assert settings_file(rel, elsewhere, repo) == repo / rel  # --directory data
    monkeypatch.setenv("SITE", str(repo))
    assert settings_file("$SITE/profiles/vertex/vertex.yaml", elsewhere, None) == repo / rel
    with pytest.raises(StageError, match="no file"):
        settings_file("vertex.yaml", elsewhere, repo)


def test_paths_between_gcs_and_mount(monkeypatch):
    monkeypatch.setenv(worker.MOUNT_ENV, "/gcs")
    assert worker.mount_path("gs://b/run/x.png") == "/gcs/b/run/x.png"
    assert worker.to_uri("/gcs/b/run/x.png") == "gs://b/run/x.png"
    assert worker.to_uri("relative/x.png") == "relative/x.png"
    rows = [{"images": ["a.png"]}, {"images": [{"path": "b.png"}], "response": "[]"}]
    mapped = staging.map_images(rows, lambda p: "gs://b/" + p)
    assert mapped == [
        {"images": ["gs://b/a.png"]},
        {"images": [{"path": "gs://b/b.png"}], "response": "[]"},
    ]
    assert rows[0]["images"] == ["a.png"]  # the input rows are not modified
    url = console_url("projects/p/locations/us-central1/customJobs/123")
    assert url == (
        "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/123/cpu"
        "?project=p"
    )


def test_dockerfile_pins_match_the_project():
    """Every `name==version` in the training image is the project's pin, and the image
    installs the project itself with the vertex and gpu extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for req in project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]:
        if "==" in req:
            name, version = req.split("==")
            pins[name.strip().lower()] = version.strip()
    text = (ROOT / "envs/vertex/Dockerfile").read_text()
    found = re.findall(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9_.+-]*)", text)
    assert {n.lower() for n, _ in found} >= {"torch", "torchvision"}
    for name, version in found:
        assert pins.get(name.lower()) == version, f"{name}=={version} in the Dockerfile"
    assert ".[vertex,gpu]" in text
    assert not re.search(r"^ENTRYPOINT", text, re.M)  # the CustomJob gives the command


def test_make_vertex_image_builds_and_pushes_the_profile_image():
    image = Settings.load(ROOT / "profiles/vertex/vertex.yaml").image
    plan = subprocess.run(
        ["make", "-n", "vertex-image"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    build = plan[plan.index("docker build") : plan.index("docker push")]
    assert "-f envs/vertex/Dockerfile" in build and f'-t "{image}" .' in build
    assert f'docker push "{image}"' in plan
    # the build context (Dockerfile.dockerignore) holds everything the Dockerfile copies
    allowed = {
        line[1:].strip("/")
        for line in (ROOT / "envs/vertex/Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    dockerfile = (ROOT / "envs/vertex/Dockerfile").read_text()
    copied = {p for line in re.findall(r"^COPY (.+) \S+$", dockerfile, re.M) for p in line.split()}
    assert copied and copied <= allowed, copied - allowed


# --------------------------------------------------------------------------- stand-ins


class _Job:
    def __init__(self, state):
        self.state = type("State", (), {"name": state})()


class _InterruptedWhileReading:
    """A JobService whose first state read is cut by Ctrl-C (the signal handler raises)."""

    def __init__(self):
        self.reads, self.cancelled = 0, []

    def get_custom_job(self, name):
        self.reads += 1
        if self.reads == 1:
            raise Interrupted("SIGINT")
        return _Job("JOB_STATE_CANCELLED" if self.cancelled else "JOB_STATE_RUNNING")

    def cancel_custom_job(self, name):
        self.cancelled.append(name)


def test_ctrl_c_while_the_state_is_read_cancels_the_job():
    """A signal that lands during a state read is no network blip to retry: the job is
    cancelled (tests/workflow/test_vertex.py::test_ctrl_c_cancels_the_job lost this race)."""
    client = _InterruptedWhileReading()
    with pytest.raises(StageError, match="cancelled \\(SIGINT\\)"):
        vertex_job.wait_for(client, "projects/p/locations/r/customJobs/1", 0.01)
    assert client.cancelled == ["projects/p/locations/r/customJobs/1"]


class _Clock:
    """time.monotonic and time.sleep of a test: sleeping advances the clock at once."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def monotonic(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


class _Unreachable:
    """A JobService that does not answer for ``down`` reads, then says the job succeeded."""

    def __init__(self, down):
        self.down, self.reads, self.cancelled = down, 0, []

    def get_custom_job(self, name):
        self.reads += 1
        if self.reads <= self.down:
            raise ConnectionError("Network is unreachable")
        return _Job("JOB_STATE_SUCCEEDED")

    def cancel_custom_job(self, name):
        self.cancelled.append(name)


def test_lost_contact_backs_off_and_never_cancels(monkeypatch, caplog):
    """Vertex unreachable for 8 reads: the launcher waits with doubling pauses (capped), says in
    the log that the job is not cancelled, and picks the job up again when Vertex answers."""
    clock = _Clock()
    monkeypatch.setattr(vertex_job.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(vertex_job.time, "sleep", clock.sleep)
    caplog.set_level("INFO", logger="drawtune")
    client = _Unreachable(down=8)
    job = vertex_job.wait_for(client, "projects/p/locations/r/customJobs/1", 30, patience_s=7200)
    assert job.state.name == "JOB_STATE_SUCCEEDED" and client.cancelled == []
    waited = sum(clock.sleeps)
    assert 30 + 60 + 120 + 240 + 300 * 4 == waited  # 30 s doubling, at most 300 s a pause
    assert "The job is NOT cancelled" in caplog.text
    assert "Vertex AI answers again" in caplog.text


def test_contact_lost_past_the_jobs_timeout_fails_the_rule_without_a_cancel(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(vertex_job.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(vertex_job.time, "sleep", clock.sleep)
    client = _Unreachable(down=10**6)
    with pytest.raises(StageError, match="it was not cancelled and has ended by its timeout"):
        vertex_job.wait_for(client, "projects/p/locations/r/customJobs/1", 30, patience_s=3600)
    assert client.cancelled == []
    assert 3600 <= sum(clock.sleeps) < 3600 + vertex_job.MAX_BACKOFF_S


def test_worker_log_reaches_the_bucket_while_the_stage_runs(tmp_path):
    src, dest = tmp_path / "worker.log", tmp_path / "gcs" / "b" / "job" / "worker.log"
    src.write_text("line 1\n")
    copier = worker.LogCopier(src, dest, every=0.05).start()
    try:
        deadline = __import__("time").monotonic() + 30
        while not (dest.is_file() and dest.read_text() == "line 1\n"):
            assert __import__("time").monotonic() < deadline, "no copy while running"
            __import__("time").sleep(0.02)
        with open(src, "a") as f:
            f.write("line 2\n")
    finally:
        copier.stop()
    assert dest.read_text() == "line 1\nline 2\n"  # the last lines, copied when stopped


def test_a_restarted_worker_keeps_the_earlier_attempts_log(tmp_path, monkeypatch):
    """A worker started again in the same job (after a preemption) finds the earlier attempt's
    log in the bucket and continues it; its scratch folder is the same (same task)."""
    monkeypatch.setenv(worker.MOUNT_ENV, str(tmp_path / "gcs"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.delenv("CLUSTER_SPEC", raising=False)
    (tmp_path / "tmp").mkdir()
    task = {"stage": "export", "kwargs": {}, "log": "gs://b/run/vertex/x/worker.log"}
    log = tmp_path / "gcs/b/run/vertex/x/worker.log"
    log.parent.mkdir(parents=True)
    log.write_text("attempt 1: step 7\n")
    assert worker.scratch_dir(task) == worker.scratch_dir(json.loads(json.dumps(task)))
    assert worker.worker(task) == 1  # an unknown stage: the attempt fails at once
    text = log.read_text()
    assert text.startswith("attempt 1: step 7\n" + worker.RESTARTED)
    assert "unknown stage 'export'" in text
