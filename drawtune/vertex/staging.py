"""Staging a job's inputs to Cloud Storage: files by content hash, JSONL rows with the images
they name, models checked before a job is paid for."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl
from . import gcs


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
