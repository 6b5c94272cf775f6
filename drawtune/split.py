"""Stable train/val/test assignment.

A record's split depends only on its key (the image's content hash, or a configured group
value so that sheets of one drawing set stay together) and the split fractions: adding
drawings never moves existing ones between splits.
"""

from __future__ import annotations

import hashlib

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


def split_records(records: list[dict], val: float, test: float, salt: str = "drawtune"):
    """Assign splits; drop repeated image content (first occurrence wins) into rejects.

    Returns ``({split: [records]}, rejects)``; records within a split are sorted by content hash.
    """
    seen: dict[str, dict] = {}
    rejects = []
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
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
        key = r["group"] if r.get("group") is not None else r["sha256"]
        out[split_of(str(key), val, test, salt)].append(r)
    for s in SPLITS:
        out[s].sort(key=lambda r: (r["sha256"], r["image"]))
    return out, rejects
