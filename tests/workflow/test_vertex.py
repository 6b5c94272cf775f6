"""The Vertex AI profile end to end: the tiny-model workflow run through a test copy of
profiles/vertex against a GCS emulator and a JobService stand-in (tests/support), and what
cancels a job."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import BIN, ROOT
from gcs_emulator import BUCKET, free_port
from vertex_standin import SETTINGS

from drawtune.coords import ResizeSpec
from drawtune.errors import StageError
from drawtune.jsonio import load_jsonl
from drawtune.train.stages import Merge
from drawtune.vertex import gcs, staging
from drawtune.vertex import job as vertex_job
from drawtune.vertex.settings import Settings
from drawtune.vertex.worker import RESTARTED

CANARY = "hf_canary_9f8e7d6c5b4a"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """A GCS emulator and the JobService stand-in, both on loopback."""
    from gcp_storage_emulator.server import create_server
    from vertex_standin import JobService

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    host = f"http://127.0.0.1:{port}"
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    service = JobService(BUCKET, tmp_path_factory.mktemp("vertex") / "gcs", path)
    yield service
    service.stop()
    server.stop()
    if old is None:
        del os.environ["STORAGE_EMULATOR_HOST"]
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


def submit(service, command: list[str]) -> str:
    """A CustomJob running ``command``, created through the real client; its name."""
    from google.cloud import aiplatform_v1

    settings = Settings(**SETTINGS, api_endpoint=service.endpoint)
    body = vertex_job.job_spec(settings, "train_adapter", "x", {}, f"gs://{BUCKET}/jobs")
    body["job_spec"]["worker_pool_specs"][0]["container_spec"].update(command=command, args=[])
    job = vertex_job.job_client(settings).create_custom_job(
        parent="projects/test-project/locations/us-central1",
        custom_job=aiplatform_v1.CustomJob(body),
    )
    return job.name


def wait_state(service, name: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while service.jobs[name].state.name != state and time.monotonic() < deadline:
        time.sleep(0.2)
    assert service.jobs[name].state.name == state


WAITER = """
import logging, sys
from drawtune.vertex import job as vertex_job
from drawtune.vertex.settings import Settings
logging.basicConfig(level=logging.INFO)
settings = Settings(project="p", region="r", bucket="b", image="i", api_endpoint=sys.argv[1])
vertex_job.wait_for(vertex_job.job_client(settings), sys.argv[2], 0.2)
"""


def test_job_is_cancelled_when_snakemake_goes_away(cloud, tmp_path):
    """The launcher's parent dies (Snakemake killed hard, or the shell between): the launcher,
    now an orphan, cancels its job instead of leaving it running and billing."""
    name = submit(cloud, ["sleep", "120"])
    wait_state(cloud, name, "JOB_STATE_RUNNING")
    shell = subprocess.Popen(
        ["bash", "-c", f'"{BIN}/python" -c "$0" "$1" "$2"; sleep 60', WAITER, cloud.endpoint, name],
        stdout=open(tmp_path / "waiter.out", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while "JOB_STATE_RUNNING" not in (tmp_path / "waiter.out").read_text():
        assert time.monotonic() < deadline, "the waiter never polled"
        time.sleep(0.2)
    assert name not in cloud.cancelled
    os.kill(shell.pid, signal.SIGKILL)
    shell.wait()
    wait_state(cloud, name, "JOB_STATE_CANCELLED")
    assert name in cloud.cancelled
    assert "Snakemake exited: cancelling vertex job" in (tmp_path / "waiter.out").read_text()


def test_incomplete_gcs_model_fails_before_a_job_is_paid_for(cloud, tmp_path):
    from gcs_emulator import make_model

    from drawtune.vertex import gcs

    model = make_model(tmp_path / "model")
    gcs.upload(model, f"gs://{BUCKET}/models/ok")
    (model / "preprocessor_config.json").unlink()
    gcs.upload(model, f"gs://{BUCKET}/models/broken")
    stager = staging.Stager(f"gs://{BUCKET}/run", tmp_path, gcs.client())
    assert stager.stage_model(f"gs://{BUCKET}/models/ok") == f"gs://{BUCKET}/models/ok"
    assert stager.stage_model("Qwen/Qwen3-VL-4B-Instruct") == "Qwen/Qwen3-VL-4B-Instruct"
    assert not stager.sent  # neither is copied
    settings = tmp_path / "vertex.yaml"
    settings.write_text(yaml.safe_dump({**SETTINGS, "api_endpoint": cloud.endpoint}))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"x")
    before = len(cloud.received)
    with pytest.raises(StageError, match=r"models/broken is incomplete: processor"):
        vertex_job.run_remote(
            settings_path=settings,
            rule="merge_adapter",
            name="demo",
            stage=Merge(
                family="qwen3_vl",
                base=f"gs://{BUCKET}/models/broken",
                adapter=str(tmp_path / "adapter"),
                tuner="lora",
                spec=ResizeSpec(),
                merged_out=str(tmp_path / "merged"),
                log_path=str(tmp_path / "merge.log"),
            ),
            workdir=tmp_path,
        )
    assert len(cloud.received) == before  # nothing was submitted


def vertex_copy(finished: Path, dest: Path, service, run_id: str) -> Path:
    """The finished local run without its GPU outputs, and a test copy of the vertex profile."""
    shutil.copytree(
        finished,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("run"),
    )
    # the untrained base keeps its local predictions (the same rule; saves CI time)
    for gone in ("train", "merged", "predictions/demo", "metrics/demo", "report"):
        shutil.rmtree(dest / "results" / gone, ignore_errors=True)
    settings = yaml.safe_load((dest / "profiles/vertex/vertex.yaml").read_text())
    settings.update(
        SETTINGS,
        run_id=run_id,
        poll_seconds=0.2,
        log_copy_seconds=1,
        api_endpoint=service.endpoint,
    )
    (dest / "profiles/vertex/vertex.yaml").write_text(yaml.safe_dump(settings))
    return dest


def vertex_snakemake(wd: Path, *args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env["HF_TOKEN"] = CANARY  # a secret in the user's environment must go nowhere
    cmd = [str(BIN / "snakemake"), "--profile", "profiles/vertex", "--cores", "2", *args]
    return subprocess.Popen(
        cmd, cwd=wd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def finish(proc: subprocess.Popen, timeout=600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def decoded(body: dict):
    from google.cloud import aiplatform_v1

    return aiplatform_v1.CustomJob.from_json(json.dumps(body))


@pytest.mark.workflow
def test_workflow_on_vertex(finished_workflow, cloud, tmp_path):
    wd = vertex_copy(finished_workflow, tmp_path / "wf", cloud, "e2e")
    before = len(cloud.received)
    scratch_before = set(cloud.scratch.glob("drawtune-*"))
    rc, out = finish(vertex_snakemake(wd))
    assert rc == 0, out[-6000:]
    bodies = cloud.received[before:]
    jobs = sorted((decoded(b) for b in bodies), key=lambda j: j.display_name)
    assert [j.display_name for j in jobs] == [
        "drawtune-merge_adapter-demo",
        "drawtune-predict_split-demo-test",
        "drawtune-predict_split-demo-val",
        "drawtune-train_adapter-demo",
    ]
    run = f"gs://{BUCKET}/drawtune/e2e"
    for job in jobs:
        rule = job.display_name.split("-")[1]
        pool = job.job_spec.worker_pool_specs[0]
        shipped = Settings.load(ROOT / "profiles/vertex/vertex.yaml").machine(rule)
        assert pool.machine_spec.machine_type == shipped.machine_type
        assert pool.machine_spec.accelerator_type.name == shipped.accelerator_type
        assert pool.machine_spec.accelerator_count == 1 and pool.replica_count == 1
        assert pool.container_spec.image_uri == SETTINGS["image"]
        assert pool.disk_spec.boot_disk_type == "pd-ssd"  # the family's (a2, g2)
        # the job's timeout is the rule's runtime (minutes); a worker restart restarts the job
        runtime = {"train_adapter": 1440, "merge_adapter": 120, "predict_split": 240}[rule]
        assert job.job_spec.scheduling.timeout.total_seconds() == runtime * 60
        assert job.job_spec.scheduling.restart_job_on_worker_restart
        assert list(pool.container_spec.command) == ["drawtune", "worker"]
        assert {e.name: e.value for e in pool.container_spec.env} == {"PYTHONUNBUFFERED": "1"}
        assert job.job_spec.service_account == SETTINGS["service_account"]
        out_dir = job.job_spec.base_output_directory.output_uri_prefix
        assert out_dir.startswith(f"{run}/vertex/{rule}/")
        task = json.loads(pool.container_spec.args[0])
        assert task["log"] == f"{out_dir}/worker.log"
        # every path the job gets is in the run's folder; nothing local leaks in
        for key, value in task["kwargs"].items():
            if key in ("base", "model", "adapter", "train_jsonl", "dataset", "merged_out"):
                assert str(value).startswith(run + "/"), (key, value)
    train = json.loads(jobs[3].job_spec.worker_pool_specs[0].container_spec.args[0])
    assert train["stage"] == "train"
    assert train["kwargs"]["base"] == f"{run}/resources/models/tiny-qwen3_vl"
    assert train["kwargs"]["adapter_out"] == f"{run}/results/train/demo/adapter"
    assert train["kwargs"]["train_cfg"]["tuner"] == "full"
    # the checkpoints stay in the bucket, beside the staged inputs, where a restart finds them
    assert train["kwargs"]["run_dir"] == f"{run}/results/train/demo/run"
    names = gcs.list_names(f"{run}/results/train/demo/run")
    assert any(re.fullmatch(r"checkpoint-\d+/trainer_state\.json", n) for n in names), names
    assert not (wd / "results/train/demo/run").exists()  # never downloaded
    predict_demo = json.loads(jobs[1].job_spec.worker_pool_specs[0].container_spec.args[0])
    assert predict_demo["kwargs"]["model"] == f"{run}/results/merged/demo"
    assert predict_demo["kwargs"]["logprobs"] is True  # box scores travel to the job
    # state changes and console links reach the Snakemake log
    assert "JOB_STATE_RUNNING" in out and "JOB_STATE_SUCCEEDED" in out
    # each worker removes its scratch (training run dir, mapped JSONL) however it ends
    # (torch's own caches, torchinductor_*, are not ours)
    assert set(cloud.scratch.glob("drawtune-*")) == scratch_before
    assert "https://console.cloud.google.com/vertex-ai/locations/us-central1/training/" in out
    # the outputs are back in the local results tree, image paths as the local profile has them
    assert (wd / "results/train/demo/adapter/model.safetensors").is_file()
    assert load_jsonl(wd / "results/train/demo/telemetry.jsonl")  # written in the job
    assert train["kwargs"]["telemetry_out"] == f"{run}/results/train/demo/telemetry.jsonl"
    assert (wd / "results/merged/demo/config.json").is_file()
    test_rows = load_jsonl(wd / "results/swift/demo/test.jsonl")
    for model in ("base", "demo"):
        preds = load_jsonl(wd / f"results/predictions/{model}/test.jsonl")
        assert [p["images"][0]["path"] for p in preds] == [r["images"][0] for r in test_rows]
        metrics = json.loads((wd / f"results/metrics/{model}/test.json").read_text())
        assert metrics["n_images"] == len(test_rows)
    assert (wd / "results/report/metrics.html").is_file()
    # staging is by content: predict finds the merged model where the merge job wrote it and
    # uploads only the test split; merge found the adapter where the train job wrote it
    log = (wd / "logs/predict_split/demo/test.log").read_text()
    uploaded = re.findall(r"uploaded (gs://\S+)", log)
    assert uploaded and all("/results/merged/" not in u for u in uploaded), uploaded
    assert f"uploaded {run}/results/swift/demo/test.jsonl" in log
    log = (wd / "logs/merge_adapter/demo.log").read_text()
    assert re.search(r"staged to gs://\S+: 0 uploaded, \d+ unchanged", log), log[-2000:]
    # nothing is left to do
    rc, dry = finish(vertex_snakemake(wd, "-n"))
    assert rc == 0 and "Nothing to be done" in dry, dry[-2000:]
    # the secret in the environment reached no job, log, result or report
    assert CANARY not in json.dumps(bodies) and CANARY not in out
    for folder in ("logs", "results"):
        for f in (wd / folder).rglob("*"):
            assert not f.is_file() or CANARY.encode() not in f.read_bytes(), f


@pytest.mark.workflow
def test_failed_job_fails_the_rule_and_cancels_the_others(finished_workflow, cloud, tmp_path):
    """One experiment's job fails while another's trains: the failing rule's log gets the job's
    message and last log lines; the other job is cancelled (Snakemake would wait for it)."""
    wd = vertex_copy(finished_workflow, tmp_path / "wf", cloud, "failing")
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    demo = cfg["experiments"]["demo"]
    variant = tmp_path / "variant.yaml"
    experiments = {
        "demo": {**demo, "extra_args": {"no_such_flag": 1}},
        "long": {**demo, "epochs": 200},
    }
    variant.write_text(yaml.safe_dump({"experiments": experiments}))
    targets = ["results/train/demo/logging.jsonl", "results/train/long/logging.jsonl"]
    before = set(cloud.jobs)
    rc, out = finish(
        vertex_snakemake(wd, *targets, "--configfile", "config/config.yaml", str(variant))
    )
    assert rc != 0
    assert "JOB_STATE_FAILED" in out
    assert "exited with a non-zero status of 1" in out
    rule_log = (wd / "logs/train_adapter/demo.log").read_text()
    assert "last lines of the vertex job's log" in rule_log
    assert "no_such_flag" in rule_log  # swift's own complaint, from the job's log
    assert not (wd / "results/train/demo/adapter").exists()
    new = {n: j for n, j in cloud.jobs.items() if n not in before}
    long = [n for n, j in new.items() if j.display_name == "drawtune-train_adapter-long"]
    assert len(new) == 2 and len(long) == 1
    wait_state(cloud, long[0], "JOB_STATE_CANCELLED")
    assert long[0] in cloud.cancelled
    long_log = (wd / "logs/train_adapter/long.log").read_text()
    assert "rule train_adapter failed, so the workflow stops: cancelling vertex job" in long_log
    assert not (wd / "results/train/long/logging.jsonl").exists()


@pytest.mark.workflow
def test_ctrl_c_cancels_the_job(finished_workflow, cloud, tmp_path):
    wd = vertex_copy(finished_workflow, tmp_path / "wf", cloud, "cancel")
    proc = vertex_snakemake(wd, "results/train/demo/logging.jsonl", start_new_session=True)
    name = cloud.wait_running(skip=set(cloud.jobs))
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    rc, out = finish(proc, timeout=120)
    assert rc != 0
    assert name in cloud.cancelled
    deadline = time.monotonic() + 30
    while cloud.jobs[name].state.name != "JOB_STATE_CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cloud.jobs[name].state.name == "JOB_STATE_CANCELLED"
    assert "cancelling vertex job" in (wd / "logs/train_adapter/demo.log").read_text()


@pytest.mark.workflow
def test_job_cancelled_in_the_console_fails_the_rule(finished_workflow, cloud, tmp_path):
    wd = vertex_copy(finished_workflow, tmp_path / "wf", cloud, "console")
    proc = vertex_snakemake(wd, "results/train/demo/logging.jsonl")
    name = cloud.wait_running(skip=set(cloud.jobs))
    cloud.wait_output(name, "stage train on cpu")  # the worker has started the stage
    cloud.cancel(name)  # what the console's Cancel button does
    rc, out = finish(proc)
    assert rc != 0
    assert f"vertex job {name} ended JOB_STATE_CANCELLED" in out
    rule_log = (wd / "logs/train_adapter/demo.log").read_text()
    assert "ended JOB_STATE_CANCELLED" in rule_log
    assert "last lines of the vertex job's log" in rule_log
    assert "stage train stopped by SIGTERM (job cancelled or preempted)" in rule_log
    assert not (wd / "results/train/demo/logging.jsonl").exists()


def test_lost_contact_with_vertex_cancels_nothing(cloud, caplog):
    """Vertex's JobService answers 503 for a while (the real client's errors): the launcher
    keeps watching with pauses and finds the job again; nothing is cancelled."""
    import threading

    name = submit(cloud, ["sleep", "4"])
    wait_state(cloud, name, "JOB_STATE_RUNNING")
    cloud.outage.set()
    threading.Timer(2.5, cloud.outage.clear).start()
    caplog.set_level("INFO", logger="drawtune")
    settings = Settings(**SETTINGS, api_endpoint=cloud.endpoint)
    job = vertex_job.wait_for(vertex_job.job_client(settings), name, 0.2, patience_s=120)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    assert cloud.reads_refused >= 2 and name not in cloud.cancelled
    assert "The job is NOT cancelled" in caplog.text and "answers again" in caplog.text


def _mount_file(cloud, uri: str) -> Path:
    return cloud.mount / uri[len("gs://") :]


@pytest.mark.workflow
def test_preempted_training_resumes_from_its_checkpoint_in_the_bucket(
    finished_workflow, cloud, tmp_path
):
    """The worker is killed mid-training without warning (a Spot preemption) and started again
    in the same job: it resumes from the last complete checkpoint in the bucket, the step
    counter goes on from there, and the rule succeeds without a second job."""
    wd = vertex_copy(finished_workflow, tmp_path / "wf", cloud, "preempt")
    variant = tmp_path / "variant.yaml"
    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    demo = {**cfg["experiments"]["demo"], "batch_size": 1, "save_steps": 2}
    variant.write_text(yaml.safe_dump({"experiments": {"demo": demo}}))
    before = set(cloud.jobs)
    proc = vertex_snakemake(
        wd, "results/train/demo/adapter", "--configfile", "config/config.yaml", str(variant)
    )
    name = cloud.wait_running(skip=before)
    run = _mount_file(cloud, f"gs://{BUCKET}/drawtune/preempt/results/train/demo/run")
    deadline = time.monotonic() + 300
    while not list(run.glob("checkpoint-*/trainer_state.json")):
        assert time.monotonic() < deadline and proc.poll() is None, "no checkpoint in the bucket"
        time.sleep(0.2)
    cloud.preempt(name)
    rc, out = finish(proc)
    assert rc == 0, out[-4000:]
    assert cloud.restarts.get(name) == 1 and set(cloud.jobs) - before == {name}
    text = _mount_file(
        cloud, f"gs://{BUCKET}/drawtune/preempt/vertex/train_adapter/demo/worker.log"
    )
    log = text.read_text()
    first, _, second = log.partition(RESTARTED)
    assert second, log[-3000:]
    m = re.search(r"resuming from \S*/checkpoint-(\d+)", second)
    assert m, second[-3000:]
    resumed_at = int(m.group(1))
    steps = [int(a) for a, _ in re.findall(r"'global_step/max_steps': '(\d+)/(\d+)'", second)]
    assert steps and steps[0] == resumed_at + 1, steps[:3]  # not from step 1
    max_steps = int(re.findall(r"'global_step/max_steps': '\d+/(\d+)'", second)[0])
    state = json.loads((wd / "results/train/demo/adapter/trainer_state.json").read_text())
    assert state["global_step"] == max_steps > resumed_at


@pytest.mark.workflow
def test_worker_killed_without_warning_leaves_its_log_tail_in_the_rule_log(
    finished_workflow, cloud, tmp_path
):
    """SIGKILL of the worker (the OOM killer) leaves no time for a last copy: the log copied
    while it ran reaches the bucket, and its tail the rule's log."""
    wd = vertex_copy(finished_workflow, tmp_path / "wf", cloud, "killed")
    before = set(cloud.jobs)
    proc = vertex_snakemake(wd, "results/train/demo/adapter")
    name = cloud.wait_running(skip=before)
    job_log = _mount_file(
        cloud, f"gs://{BUCKET}/drawtune/killed/vertex/train_adapter/demo/worker.log"
    )
    deadline = time.monotonic() + 180
    while not (job_log.is_file() and "running: " in job_log.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, (
            "the log never reached the bucket while the worker ran"
        )
        time.sleep(0.1)
    cloud.kill(name)
    # what had reached the bucket when the worker died (no copy can follow a SIGKILL)
    copied = [line for line in job_log.read_text().splitlines() if line.strip()]
    rc, out = finish(proc)
    assert rc != 0
    assert "exited with a non-zero status of 137" in out
    rule_log = (wd / "logs/train_adapter/demo.log").read_text()
    assert "last lines of the vertex job's log" in rule_log
    tail = rule_log.split("last lines of the vertex job's log", 1)[1]
    assert copied[-1] in tail, (copied[-3:], tail[-2000:])
