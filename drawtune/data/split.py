"""Stable train/val/test assignment.

A record's split depends only on its key (the image's content hash, or a configured group
value so that sheets of one drawing set stay together) and the split fractions: adding
drawings never moves existing ones between splits.
"""

from __future__ import annotations

import hashlib
import logging
import sys

from .. import paths
from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl, read_json, write_json
from .convert import truth_coco

log = logging.getLogger("drawtune")

SPLITS = ("train", "val", "test")


def split_of(key: str, val: float, test: float, salt: str = "drawtune") -> str:
    """``test`` for the first ``test`` fraction of the hash space, then ``val``, else ``train``."""
    h = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


def _answer(r: dict):
    return r["label"] if "label" in r else r["boxes"]


def _name(r: dict) -> str:
    return f"{r['source']} {r['record']}"


def unique_images(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Records with repeated image content dropped into rejects: ``(kept, rejects)``.

    The same pixels with the same boxes (or label) keep one copy, the first by image path,
    file and record (never by the order of the datasets); with other boxes or another label
    no copy is kept, since which one is right cannot be told, and every copy is rejected with
    the others named. The same pixels twice would teach two answers to one question, or count
    double."""
    by_sha: dict[str, list[dict]] = {}
    for r in records:
        by_sha.setdefault(r["sha256"], []).append(r)
    kept, rejects = [], []
    for r in records:
        copies = by_sha[r["sha256"]]
        if len(copies) == 1:
            kept.append(r)
            continue
        first = min(copies, key=lambda c: (c["image"], c["source"], c["record"]))
        if all(_answer(c) == _answer(first) for c in copies):
            if r is first:
                kept.append(r)
                continue
            reason = f"duplicate of {_name(first)}"
        else:
            what = "label" if "label" in r else "boxes"
            others = ", ".join(_name(c) for c in copies if c is not r)
            reason = (
                f"same image content as {others} with different {what}: no copy is kept "
                "(which is right cannot be told)"
            )
        rejects.append(
            {"file": r["source"], "record": r["record"], "field": "image", "reason": reason}
        )
    return kept, rejects


def split_records(records: list[dict], val: float, test: float, salt: str = "drawtune"):
    """Assign splits; drop repeated image content (:func:`unique_images`) into rejects.

    Returns ``({split: [records]}, rejects)``; records within a split are sorted by content hash.
    """
    kept, rejects = unique_images(records)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r in kept:
        key = r["group"] if r.get("group") is not None else r["sha256"]
        out[split_of(str(key), val, test, salt)].append(r)
    for s in SPLITS:
        out[s].sort(key=lambda r: (r["sha256"], r["image"]))
    return out, rejects


def _check_fraction(origin: dict, rejects: list, summaries: list, limit: float) -> None:
    """The split's rejects count towards each dataset's ``max_rejected_fraction``, with the
    ones its validation made."""
    for s in summaries:
        extra = sum(1 for r in rejects if origin.get((r["file"], r["record"])) == s["dataset"])
        total = s["rejected"] + extra
        if s["read"] and total / s["read"] > limit:
            where = paths.VALIDATED.format(dataset=s["dataset"])
            raise StageError(
                f"dataset {s['dataset']}: {total} of {s['read']} records rejected ({extra} of "
                f"them as repeated images; {total / s['read']:.0%} > max_rejected_fraction "
                f"{limit:.0%}); see {where}/rejects.jsonl and {paths.SPLITS}/rejects.jsonl"
            )


def warn_or_fail(message: str, on_empty: str) -> None:
    """A dataset or split without a single box: a StageError with ``on_empty: fail``, else a
    warning in the log and on the terminal."""
    if on_empty == "fail":
        raise StageError(f"{message} (on_empty is fail)")
    log.warning("%s", message)
    print(f"drawtune: warning: {message}", file=sys.stderr, flush=True)


def split_dataset(
    record_files: list,
    classes: list[str],
    val: float,
    test: float,
    salt: str,
    outputs: dict,
    truth_outputs: dict,
    rejects_out,
    summary_out,
    summaries: list | None = None,
    max_rejected_fraction: float = 1.0,
    on_empty: str = "warn",
) -> dict:
    """Pool the validated records, split them, write each split (with COCO truth for
    detection), the rejects and the counts (rule split_dataset). ``summaries``: the datasets'
    validation summaries, in the order of ``record_files``, for ``max_rejected_fraction``;
    ``on_empty``: what a detection train split without a box does (``warn`` or ``fail``)."""
    records, origin = [], {}
    for k, f in enumerate(record_files):
        rows = load_jsonl(f)
        if summaries:
            name = read_json(summaries[k])["dataset"]
            origin.update({(r["source"], r["record"]): name for r in rows})
        records.extend(rows)
    splits, rejects = split_records(records, val, test, salt)
    for s in SPLITS:
        dump_jsonl(splits[s], outputs[s])
        if truth_outputs:  # detection: COCO ground truth per split
            write_json(truth_coco(splits[s], classes), truth_outputs[s])
    dump_jsonl(rejects, rejects_out)
    summary = {s: len(splits[s]) for s in SPLITS}
    summary["duplicates_rejected"] = len(rejects)
    summary["read"] = len(records)
    write_json(summary, summary_out)
    for r in rejects:
        log.warning("rejected %s %s [%s]: %s", r["file"], r["record"], r["field"], r["reason"])
    if summaries:
        _check_fraction(origin, rejects, [read_json(p) for p in summaries], max_rejected_fraction)
    if not splits["train"]:
        raise StageError("the train split is empty: add drawings or lower split.val/split.test")
    if not splits["test"]:
        raise StageError("the test split is empty: add drawings or raise split.test")
    if truth_outputs and not any(r["boxes"] for r in splits["train"]):
        warn_or_fail(
            f"the train split's {len(splits['train'])} drawings have no box at all: the model "
            "would learn to find nothing",
            on_empty,
        )
    log.info("split: %s", summary)
    return summary


def split_classify(
    records_file,
    val: float,
    test: float,
    salt: str,
    outputs: dict,
    rejects_out,
    summary_out,
    summary=None,
    max_rejected_fraction: float = 1.0,
) -> dict:
    """Stable splits of one classification dataset: the detection split without COCO truth.
    ``summary``: the dataset's validation summary, for ``max_rejected_fraction``."""
    return split_dataset(
        [records_file],
        [],
        val,
        test,
        salt,
        outputs,
        None,
        rejects_out,
        summary_out,
        [summary] if summary else None,
        max_rejected_fraction,
    )
