"""The Vertex AI profile without a cloud: settings, job specs, cluster mapping, mount paths and
the training image's pins."""

from __future__ import annotations

import json
import re
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


def test_cluster_env_maps_vertex_replicas_to_torchrun():
    spec = {
        "cluster": {"workerpool0": ["cmle-chief:2222"], "workerpool1": ["w0:2222", "w1:2222"]},
        "task": {"type": "workerpool1", "index": 1},
    }
    env = worker.cluster_env(json.dumps(spec), gpus=4)
    assert env == {
        "NNODES": "3",
        "NODE_RANK": "2",
        "MASTER_ADDR": "cmle-chief",
        "MASTER_PORT": "2222",
        "NPROC_PER_NODE": "4",
    }
    spec["task"] = {"type": "workerpool0", "index": 0}
    assert worker.cluster_env(json.dumps(spec), gpus=4)["NODE_RANK"] == "0"
    single = {"cluster": {"workerpool0": ["h:1"]}, "task": {"type": "workerpool0", "index": 0}}
    assert worker.cluster_env(json.dumps(single), gpus=2) == {"NPROC_PER_NODE": "2"}
    assert worker.cluster_env(None, gpus=1) == {}
    # only the chief writes outputs and the job's log
    assert worker.is_chief(None) and worker.is_chief(json.dumps(single))
    assert not worker.is_chief(json.dumps({**spec, "task": {"type": "workerpool1", "index": 0}}))


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
