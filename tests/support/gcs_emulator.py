"""Helpers for the tests that talk to a Cloud Storage emulator (gcp-storage-emulator) on
loopback: the bucket, a free port, and a model folder to stage."""

from __future__ import annotations

import json
import os
from pathlib import Path

from drawtune.serve_process import free_port  # noqa: F401 - the tests take it from here

BUCKET = "drawtune-test"


def make_model(folder: Path, shards: bool = False) -> Path:
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_text("{}")
    (folder / "preprocessor_config.json").write_text("{}")
    if shards:
        index = {"weight_map": {"a": "model-00001-of-00002.safetensors"}}
        index["weight_map"]["b"] = "model-00002-of-00002.safetensors"
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        (folder / "model-00001-of-00002.safetensors").write_bytes(b"1" * 100)
        (folder / "model-00002-of-00002.safetensors").write_bytes(b"2" * 100)
    else:
        (folder / "model.safetensors").write_bytes(os.urandom(50_000))
    return folder
