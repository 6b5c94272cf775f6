"""Cloud Storage staging, downloads and model checks against a GCS emulator on loopback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from gcs_emulator import BUCKET, free_port, make_model

from drawtune.vertex import gcs


@pytest.fixture(scope="module")
def emulator():
    """gcp-storage-emulator serving the GCS JSON API; the client finds it through the env."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    yield f"http://127.0.0.1:{port}"
    server.stop()
    if old is None:
        del os.environ["STORAGE_EMULATOR_HOST"]
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


def test_split_uri():
    assert gcs.split_uri("gs://b/a/c/") == ("b", "a/c")
    assert gcs.split_uri("gs://b") == ("b", "")
    for bad in ("/gcs/b/a", "gs:///a", "s3://b/a"):
        with pytest.raises(gcs.GcsError):
            gcs.split_uri(bad)
    assert gcs.join("gs://b/", "/p/", "", "x") == "gs://b/p/x"


def test_upload_skips_unchanged_and_sends_changed(emulator, tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("one")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    uri = f"gs://{BUCKET}/t1/data"
    first = gcs.upload(folder, uri)
    assert sorted(first.sent) == [f"{uri}/a.txt", f"{uri}/sub/b.bin"] and not first.skipped
    again = gcs.upload(folder, uri)
    assert not again.sent and len(again.skipped) == 2
    (folder / "a.txt").write_text("two")
    changed = gcs.upload(folder, uri)
    assert changed.sent == [f"{uri}/a.txt"] and changed.skipped == [f"{uri}/sub/b.bin"]
    assert gcs.read_text(f"{uri}/a.txt") == "two"
    assert gcs.list_names(uri) == ["a.txt", "sub/b.bin"]


def test_download_folder_and_file(emulator, tmp_path):
    folder = tmp_path / "src"
    (folder / "d").mkdir(parents=True)
    (folder / "d" / "x.txt").write_text("x")
    (folder / "y.txt").write_text("y")
    uri = f"gs://{BUCKET}/t2/src"
    gcs.upload(folder, uri)
    dest = tmp_path / "dest"
    (dest / "stale").mkdir(parents=True)
    (dest / "stale" / "old.txt").write_text("old")
    gcs.download(uri, dest)
    got = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert got == ["d/x.txt", "y.txt"]  # the stale file is gone
    gcs.download(f"{uri}/y.txt", tmp_path / "one" / "y.txt")
    assert (tmp_path / "one" / "y.txt").read_text() == "y"
    with pytest.raises(gcs.GcsError, match="nothing at"):
        gcs.download(f"gs://{BUCKET}/t2/absent", tmp_path / "absent")


def test_check_model_names_what_is_missing(emulator, tmp_path):
    model = make_model(tmp_path / "m")
    uri = f"gs://{BUCKET}/t3/model"
    gcs.upload(model, uri)
    assert gcs.check_model(uri) == []
    bucket = gcs.client().bucket(BUCKET)
    bucket.blob("t3/model/preprocessor_config.json").delete()
    bucket.blob("t3/model/tokenizer.json").delete()
    problems = gcs.check_model(uri)
    assert len(problems) == 2
    assert problems[0].startswith("tokenizer") and problems[1].startswith("processor")
    assert gcs.check_model(f"gs://{BUCKET}/t3/none") == [f"nothing at gs://{BUCKET}/t3/none"]


def test_check_model_finds_missing_shard(emulator, tmp_path):
    model = make_model(tmp_path / "m", shards=True)
    uri = f"gs://{BUCKET}/t4/model"
    gcs.upload(model, uri)
    assert gcs.check_model(uri) == []
    gcs.client().bucket(BUCKET).blob("t4/model/model-00002-of-00002.safetensors").delete()
    assert gcs.check_model(uri) == [
        "weight shard model-00002-of-00002.safetensors named in model.safetensors.index.json"
    ]


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "drawtune.cli", *args], capture_output=True, text=True, env=env
    )


def test_cli_upload_and_check_model(emulator, tmp_path):
    env = dict(os.environ, STORAGE_EMULATOR_HOST=emulator)
    model = make_model(tmp_path / "m")
    uri = f"gs://{BUCKET}/t5/model"
    up = _cli("gcs", "upload-model", str(model), uri, env=env)
    assert up.returncode == 0, up.stderr
    assert "5 files uploaded, 0 unchanged" in up.stdout
    again = _cli("gcs", "upload-model", str(model), uri, env=env)
    assert "0 files uploaded, 5 unchanged" in again.stdout
    ok = _cli("gcs", "check-model", uri, env=env)
    assert ok.returncode == 0 and "present" in ok.stdout
    bad = _cli("gcs", "check-model", f"gs://{BUCKET}/t5", env=env)  # the parent: no config
    assert bad.returncode == 1
    (model / "config.json").unlink()
    refused = _cli("gcs", "upload-model", str(model), f"gs://{BUCKET}/t5/other", env=env)
    assert refused.returncode == 1 and "config (config.json)" in refused.stderr
    assert gcs.list_names(f"gs://{BUCKET}/t5/other") == []  # nothing uploaded


def test_upload_to_bucket_root(emulator, tmp_path):
    folder = tmp_path / "root"
    (folder / "top").mkdir(parents=True)
    (folder / "top" / "f.txt").write_text("f")
    gcs.upload(folder, f"gs://{BUCKET}")
    assert "top/f.txt" in gcs.list_names(f"gs://{BUCKET}")
