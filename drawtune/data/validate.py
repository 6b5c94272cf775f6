"""Validation of one dataset, the same for the workflow's rule and the command line: read it
with the configured rules, account for every record, and stop when too many are rejected."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..coords import ResizeSpec
from ..errors import InputError, StageError
from ..jsonio import dump_jsonl, write_json
from .images import STATS
from .leakage import STORE_NAME, FingerprintStore
from .readers import read_dataset
from .records import ReadResult, Rules
from .split import warn_or_fail

log = logging.getLogger("drawtune")


def dataset_rules(
    ds: dict,
    classes,
    validation: dict,
    *,
    normalised_dir,
    cache_dir=None,
    workers: int = 1,
    fingerprints: FingerprintStore | None = None,
) -> Rules:
    """The checks of one dataset: its keys (aliases, drop, box_units) and the config's
    ``validation`` block; ``normalised_dir`` receives converted pages, ``cache_dir`` (optional)
    keeps image facts between runs; ``fingerprints`` (optional) fingerprints every image
    decoded."""
    return Rules(
        classes=tuple(classes),
        aliases=ds.get("aliases") or {},
        clip_tolerance=validation["clip_tolerance"],
        max_image_pixels=validation["max_image_pixels"],
        drop=tuple(ds.get("drop") or ()),
        pdf_dpi=validation["pdf_dpi"],
        box_units=ds.get("box_units") or "pixels",
        normalised_dir=Path(normalised_dir),
        cache_dir=Path(cache_dir) if cache_dir else None,
        workers=workers,
        on_decode=fingerprints.on_decode if fingerprints is not None else None,
    )


def fingerprint_store(cache_dir) -> FingerprintStore:
    """The fingerprints of a dataset's images by content, kept in its image cache folder."""
    return FingerprintStore(Path(cache_dir) / STORE_NAME)


def read_checked(ds: dict, rules: Rules, spec: ResizeSpec | None = None) -> ReadResult:
    """Read one dataset; a file that cannot be read at all is a StageError."""
    before = dict(STATS)
    try:
        res = read_dataset(ds, rules, spec)
    except InputError as e:
        raise StageError(str(e)) from None
    log.info(
        "images decoded: %d of %d records (the rest came from the image cache)",
        STATS["decoded"] - before["decoded"],
        res.n_read,
    )
    for r in res.rejects:
        log.warning("rejected %s %s [%s]: %s", r["file"], r["record"], r["field"], r["reason"])
    return res


def check_rejects(
    name: str, ds: dict, res: ReadResult, max_rejected_fraction: float, rejects_out
) -> None:
    """StageError when ``on_error`` is fail and a record was rejected, when the dataset holds
    no record, or when more than ``max_rejected_fraction`` of its records were rejected."""
    if ds.get("on_error") == "fail" and res.rejects:
        raise StageError(
            f"dataset {name}: {len(res.rejects)} of {res.n_read} records rejected and on_error "
            f"is fail; see {rejects_out}"
        )
    if res.n_read == 0:
        raise StageError(f"dataset {name}: {ds['annotations']} holds no records")
    frac = len(res.rejects) / res.n_read
    if frac > max_rejected_fraction:
        raise StageError(
            f"dataset {name}: {len(res.rejects)} of {res.n_read} records rejected "
            f"({frac:.0%} > max_rejected_fraction {max_rejected_fraction:.0%}); see {rejects_out}"
        )


def validate_dataset(
    ds: dict,
    rules: Rules,
    spec: ResizeSpec | None,
    max_rejected_fraction: float,
    records_out,
    rejects_out,
    summary_out,
    name: str = "",
    rejects_copy=None,
    fingerprints: FingerprintStore | None = None,
) -> dict:
    """Read one dataset, write records, rejects and counts (rule validate_annotations), and
    say the counts on the terminal. ``rejects_copy`` (the rule's log folder) receives the
    rejects too: Snakemake deletes a failed job's outputs, so a failure's message points there.
    ``fingerprints`` (the store given to :func:`dataset_rules`): each record gets its image's
    perceptual fingerprint, for the split's near-duplicate groups.
    """
    for folder in (rules.normalised_dir, rules.cache_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)  # declared outputs, even when unused
    before = fingerprints.computed if fingerprints is not None else 0
    res = read_checked(ds, rules, spec)
    if fingerprints is not None:
        fingerprints.ensure(res.records, rules.workers)
        fingerprints.save()
        log.info(
            "fingerprints computed: %d of %d records (the rest came from the cache)",
            fingerprints.computed - before,
            len(res.records),
        )
    dump_jsonl(res.records, records_out)
    dump_jsonl(res.rejects, rejects_out)
    if rejects_copy is not None:
        Path(rejects_copy).parent.mkdir(parents=True, exist_ok=True)
        dump_jsonl(res.rejects, rejects_copy)
    summary = {
        "dataset": name,
        "read": res.n_read,
        "converted": len(res.records),
        "rejected": len(res.rejects),
    }
    write_json(summary, summary_out)
    log.info(
        "dataset %s: read %d, kept %d, rejected %d",
        name,
        summary["read"],
        summary["converted"],
        summary["rejected"],
    )
    where = rejects_copy or rejects_out
    print(
        f"drawtune: dataset {name}: read {summary['read']}, kept {summary['converted']}, "
        f"rejected {summary['rejected']}" + (f" (reasons in {where})" if res.rejects else ""),
        file=sys.stderr,
        flush=True,
    )
    check_rejects(name, ds, res, max_rejected_fraction, where)
    check_not_empty(name, ds, res)
    return summary


def check_not_empty(name: str, ds: dict, res: ReadResult) -> None:
    """A detection dataset whose records have not a single box (a layout or format read
    wrongly, or a key misspelled, looks like this) warns, or fails with ``on_empty: fail``."""
    if ds.get("task", "detect") == "detect" and res.records:
        if not any(r["boxes"] for r in res.records):
            warn_or_fail(
                f"dataset {name}: none of its {len(res.records)} drawings has a box (each would "
                f"train as a negative); check the format and layout of {ds['annotations']}",
                ds.get("on_empty") or "warn",
            )
