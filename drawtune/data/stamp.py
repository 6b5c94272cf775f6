"""A fingerprint of every file a dataset may read, so that the workflow reruns validation when
one of them changes (``rules/common.smk``: a param of validate_annotations)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .images import IMAGE_SUFFIXES

ANNOTATION_SUFFIXES = (".json", ".jsonl", ".xml", ".txt", ".yaml", ".yml")


def dataset_files(ds: dict, workdir: Path | None = None) -> list[str]:
    """Every file a dataset may read (annotations and images under its folders), so that the
    workflow reruns validation when any of them changes, even an image edited in place. A folder
    that holds the workflow itself contributes only the annotation path."""
    ann = Path(ds["annotations"])
    roots = {ann if ann.is_dir() else ann.parent}
    if ds.get("images"):
        roots.add(Path(ds["images"]))
    here = (workdir or Path.cwd()).resolve()
    files = {str(ann)} if ann.is_file() else set()
    suffixes = IMAGE_SUFFIXES + ANNOTATION_SUFFIXES
    for root in roots:
        r = root.resolve()
        if not r.is_dir() or r == here or r in here.parents:
            continue
        for dirpath, _, names in os.walk(r):
            rel = Path(dirpath).relative_to(r)
            files.update(
                str(root / rel / n) for n in names if os.path.splitext(n)[1].lower() in suffixes
            )
    return sorted(files)


def dataset_stamp(ds: dict, workdir: Path | None = None) -> str:
    """A fingerprint of every file a dataset may read (name, size, modification time; a broken
    symlink counts by its target, so that it never stops Snakemake from planning): a
    Snakemake param, so that an image added or edited in place reruns validation without making
    10,000 images inputs of the rule (which costs seconds on every no-op run)."""
    h = hashlib.sha256()
    for f in dataset_files(ds, workdir):
        try:
            st = os.stat(f)
        except OSError:  # a broken symlink: validation rejects its record and says why
            h.update(f"{f}\0missing {os.readlink(f) if os.path.islink(f) else ''}\n".encode())
            continue
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
