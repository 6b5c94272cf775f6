"""Cloud Storage for the Vertex AI profile: staging by content hash, downloads, model checks.

Every call goes through the real ``google-cloud-storage`` client. Credentials come from the
environment only (Application Default Credentials); with ``STORAGE_EMULATOR_HOST`` set the client
talks to that emulator anonymously, which is how the tests run.

A file is uploaded only when no object with the same MD5 (the hash Cloud Storage computes for
every object it stores) exists at its destination, so staging the same inputs twice uploads
nothing, and an output a job wrote is not uploaded again when a later rule reads it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("drawtune")

# What a model folder needs before a job is paid for: name -> alternatives (any one suffices).
MODEL_PARTS = {
    "config": [("config.json",)],
    "weights": [("model.safetensors",), ("model.safetensors.index.json",), ("pytorch_model.bin",)],
    "tokenizer": [("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",)],
    "tokenizer config": [("tokenizer_config.json",)],
    "processor": [("preprocessor_config.json",), ("processor_config.json",)],
}


# Snakemake's marker in directory outputs: not part of the data.
SNAKEMAKE_STAMP = ".snakemake_timestamp"


class GcsError(Exception):
    """A Cloud Storage location is malformed or does not hold what is needed."""


def split_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``."""
    if not uri.startswith("gs://"):
        raise GcsError(f"not a gs:// location: {uri}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise GcsError(f"no bucket in {uri}")
    return bucket, key.strip("/")


def join(uri: str, *parts: str) -> str:
    out = uri.rstrip("/")
    for p in parts:
        p = str(p).strip("/")
        if p:
            out += "/" + p
    return out


def client(project: str | None = None):
    """A storage client from the environment's credentials (or the emulator's, when set)."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client(project=project or "<none>")
    return storage.Client(project=project)


def md5_b64(path) -> str:
    """A file's MD5 as Cloud Storage reports it (base64 of the digest)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode("ascii")


@dataclass
class Transfer:
    """What a staging or download call did."""

    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def add(self, other: Transfer) -> Transfer:
        self.sent += other.sent
        self.skipped += other.skipped
        return self


def _files(local: Path) -> list[tuple[Path, str]]:
    """``(file, relative name)`` for a file or every file under a folder, sorted."""
    if local.is_file():
        return [(local, "")]
    if not local.is_dir():
        raise GcsError(f"{local} does not exist")
    return [
        (p, p.relative_to(local).as_posix())
        for p in sorted(local.rglob("*"))
        if p.is_file() and p.name != SNAKEMAKE_STAMP
    ]


def upload(local, uri: str, gcs=None) -> Transfer:
    """Upload a file to ``uri``, or a folder's files under ``uri/``; skip identical objects."""
    gcs = gcs or client()
    bucket_name, key = split_uri(uri)
    bucket = gcs.bucket(bucket_name)
    existing = {b.name: b.md5_hash for b in gcs.list_blobs(bucket_name, prefix=key)}
    done = Transfer()
    for path, rel in _files(Path(local)):
        name = (f"{key}/{rel}" if key else rel) if rel else key
        target = f"gs://{bucket_name}/{name}"
        if existing.get(name) == md5_b64(path):
            done.skipped.append(target)
            continue
        bucket.blob(name).upload_from_filename(str(path))
        done.sent.append(target)
    return done


def write_text(text: str, uri: str, gcs=None) -> None:
    gcs = gcs or client()
    bucket_name, key = split_uri(uri)
    gcs.bucket(bucket_name).blob(key).upload_from_string(text.encode())


def delete(uri: str, gcs=None) -> bool:
    """Remove one object; False when there was none."""
    from google.api_core.exceptions import NotFound

    gcs = gcs or client()
    bucket_name, key = split_uri(uri)
    try:
        gcs.bucket(bucket_name).blob(key).delete()
    except NotFound:
        return False
    return True


def read_text(uri: str, gcs=None) -> str | None:
    """The object's text, or None when it does not exist."""
    from google.api_core.exceptions import NotFound

    gcs = gcs or client()
    bucket_name, key = split_uri(uri)
    try:
        return gcs.bucket(bucket_name).blob(key).download_as_bytes().decode(errors="replace")
    except NotFound:
        return None


def list_names(uri: str, gcs=None) -> list[str]:
    """Object names under ``uri/``, relative to it, sorted."""
    gcs = gcs or client()
    bucket_name, key = split_uri(uri)
    prefix = key + "/" if key else ""
    return sorted(b.name[len(prefix) :] for b in gcs.list_blobs(bucket_name, prefix=prefix))


def download(uri: str, local, gcs=None) -> Transfer:
    """Download one object to the file ``local``, or every object under ``uri/`` into the
    folder ``local`` (recreated, so nothing stale stays). Fails when there is nothing."""
    gcs = gcs or client()
    bucket_name, key = split_uri(uri)
    local = Path(local)
    blob = gcs.bucket(bucket_name).get_blob(key) if key else None
    done = Transfer()
    if blob is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(local))
        done.sent.append(uri)
        return done
    blobs = [b for b in gcs.list_blobs(bucket_name, prefix=key + "/") if not b.name.endswith("/")]
    if not blobs:
        raise GcsError(f"nothing at {uri}")
    if local.exists():
        shutil.rmtree(local) if local.is_dir() else local.unlink()
    for b in sorted(blobs, key=lambda b: b.name):
        dest = local / b.name[len(key) + 1 :]
        dest.parent.mkdir(parents=True, exist_ok=True)
        b.download_to_filename(str(dest))
        done.sent.append(f"gs://{bucket_name}/{b.name}")
    return done


def missing_model_parts(names) -> list[str]:
    """Which of config, weights, tokenizer and processor files a model folder lacks; weight
    shards named by an index must all be present (checked by :func:`check_model`)."""
    names = set(names)
    missing = []
    for part, options in MODEL_PARTS.items():
        if not any(all(n in names for n in option) for option in options):
            missing.append(f"{part} ({' or '.join('+'.join(o) for o in options)})")
    return missing


def _index_shards(text: str) -> set[str]:
    return set(json.loads(text).get("weight_map", {}).values())


def check_model(uri: str, gcs=None) -> list[str]:
    """Problems with the model folder at ``uri`` (empty when it is complete)."""
    gcs = gcs or client()
    names = list_names(uri, gcs)
    if not names:
        return [f"nothing at {uri}"]
    problems = missing_model_parts(names)
    if "model.safetensors.index.json" in names:
        text = read_text(join(uri, "model.safetensors.index.json"), gcs) or "{}"
        for shard in sorted(_index_shards(text) - set(names)):
            problems.append(f"weight shard {shard} named in model.safetensors.index.json")
    return problems


def check_local_model(folder) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    names = [rel for _, rel in _files(folder)]
    problems = missing_model_parts(names)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        for shard in sorted(_index_shards(index.read_text()) - set(names)):
            problems.append(f"weight shard {shard} named in model.safetensors.index.json")
    return problems


def upload_model(folder, uri: str, gcs=None) -> Transfer:
    """Check a local model folder, upload it (unchanged files are skipped), check the copy."""
    problems = check_local_model(folder)
    if problems:
        raise GcsError(f"{folder} is not a complete model; missing: " + "; ".join(problems))
    gcs = gcs or client()
    done = upload(folder, uri, gcs)
    problems = check_model(uri, gcs)
    if problems:
        raise GcsError(f"{uri} is incomplete after upload: " + "; ".join(problems))
    return done
