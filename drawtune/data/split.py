"""Stable train/val/test assignment.

A record's split depends only on its key (the image's content hash, or a configured group
value so that sheets of one drawing set stay together) and the split fractions: adding
drawings never moves existing ones between splits.
"""

from __future__ import annotations

import hashlib
import logging

from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl, write_json
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


def unique_images(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Records with repeated image content dropped into rejects (the first occurrence wins):
    ``(kept, rejects)``. The same pixels twice, with other boxes or another label, would teach
    two answers to one question; the same record twice would count double."""
    seen: dict[str, dict] = {}
    kept, rejects = [], []
    for r in records:
        first = seen.get(r["sha256"])
        if first is not None:
            if first.get("label") != r.get("label"):  # classification records
                differs = f" with a different label ({first['label']!r}, not {r['label']!r})"
            else:
                differs = "" if first["boxes"] == r["boxes"] else " with different boxes"
            reason = "same image content as" if differs else "duplicate of"
            rejects.append(
                {
                    "file": r["source"],
                    "record": r["record"],
                    "field": "image",
                    "reason": f"{reason} {first['source']} {first['record']}{differs}",
                }
            )
            continue
        seen[r["sha256"]] = r
        kept.append(r)
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
) -> dict:
    """Pool the validated records, split them, write each split (with COCO truth for
    detection), the rejects and the counts (rule split_dataset)."""
    records = []
    for f in record_files:
        records.extend(load_jsonl(f))
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
    if not splits["train"]:
        raise StageError("the train split is empty: add drawings or lower split.val/split.test")
    if not splits["test"]:
        raise StageError("the test split is empty: add drawings or raise split.test")
    log.info("split: %s", summary)
    return summary


def split_classify(
    records_file, val: float, test: float, salt: str, outputs: dict, rejects_out, summary_out
) -> dict:
    """Stable splits of one classification dataset: the detection split without COCO truth."""
    return split_dataset(
        [records_file], [], val, test, salt, outputs, None, rejects_out, summary_out
    )
