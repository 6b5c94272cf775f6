"""Near-duplicate drawings: a perceptual fingerprint per image, the links it and an optional
file-name pattern make between drawings, and the pairs that end up in different splits.

Archives hold one sheet many times (revisions A, B and C, a re-scan, a PDF and its PNG export, a
cropped copy). The content hash of the split tells none of them apart, so one revision could
train and another test. Here each image gets a 1024-bit pHash (``imagehash.phash`` with a
32x32 DCT) of the sheet trimmed to its ink: a cropped margin, a re-saved JPEG or another
rasterisation then lands a few dozen bits away, while a different sheet drawn on the same
template (border, title block) differs in about 200 of the 1,024 bits or more (measured on
synthetic sheets: config/README.md, "Near-duplicates and leakage"). ``split`` keeps each group
of linked drawings in one split; what still crosses splits is listed by :func:`leak_report`.

Fingerprints are computed while validation has the image decoded (:meth:`FingerprintStore.
on_decode`) and kept by content hash in the dataset's cache folder, so a rerun after adding
drawings fingerprints only the new ones.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("drawtune")

HASH_SIZE = 32  # pHash side: 32x32 DCT coefficients = 1024 bits
BITS = HASH_SIZE * HASH_SIZE
# Name and version of the fingerprint: cached fingerprints of another version are recomputed.
FINGERPRINT = f"phash{HASH_SIZE}-ink-trim-2"
DEFAULT_MAX_DISTANCE = 128  # bits of 1024; see config/README.md for how it was chosen
_SIDE = 1024  # larger images are reduced (integer factor) to at most this side first
_INK = 160  # grey level below which a pixel is ink, for trimming the white margin
_MAX_TRIM = 0.10  # share of each side that trimming may cut at most
STORE_NAME = "fingerprints.json"  # in the dataset's image cache folder
ORDER = ("train", "val", "test")
SPLIT_PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))


@dataclass(frozen=True)
class LeakSettings:
    """What makes two drawings one group, and what a leak across splits does (``leakage`` in
    config/schema.yaml)."""

    max_distance: int = DEFAULT_MAX_DISTANCE  # fingerprint bits that may differ; < 0: off
    name_pattern: str | None = None  # regex on the file name; same key = one group
    on_bridge: str = "place"  # a newcomer linking groups in different splits: place | hold_out
    on_leak: str = "warn"  # warn | fail when more than max_leaks pairs cross splits
    max_leaks: int = 0

    @classmethod
    def of(cls, cfg: dict | None) -> LeakSettings:
        """From the config's ``leakage`` block (the split rule's param); None: the defaults."""
        cfg = cfg or {}
        keys = ("max_distance", "name_pattern", "on_bridge", "on_leak", "max_leaks")
        return cls(**{k: cfg[k] for k in keys if k in cfg and cfg[k] is not None})


def check_pattern(pattern: str | None, key: str = "leakage.name_pattern") -> None:
    """ValueError naming ``key`` when ``pattern`` is no valid regular expression."""
    if pattern is None:
        return
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{key}: {pattern!r} is not a valid regular expression: {e}") from None


# --- fingerprints -------------------------------------------------------------------------


def prepare(im: Image.Image) -> Image.Image:
    """The grey sheet reduced to at most 1024 px a side and trimmed to its ink: rows and
    columns with fewer dark pixels than half a percent of the side (scanner specks, an empty
    margin) are cut, so that a copy cropped within its margin hashes like the original. At
    most a tenth of each side is cut: a sheet with little on it is not reduced to its one mark
    (which would make every such sheet alike)."""
    g = im.convert("L")
    k = -(-max(g.size) // _SIDE)
    if k > 1:
        g = g.reduce(k)
    ink = np.asarray(g) < _INK
    h, w = ink.shape
    rows = np.flatnonzero(ink.sum(axis=1) >= max(2, w // 200))
    cols = np.flatnonzero(ink.sum(axis=0) >= max(2, h // 200))
    if len(rows) and len(cols):
        dx, dy = int(w * _MAX_TRIM), int(h * _MAX_TRIM)
        box = (
            min(int(cols[0]), dx),
            min(int(rows[0]), dy),
            max(int(cols[-1]) + 1, w - dx),
            max(int(rows[-1]) + 1, h - dy),
        )
        g = g.crop(box)
    return g


def fingerprint(im: Image.Image) -> str:
    """The image's fingerprint: 1024-bit pHash of :func:`prepare`'d pixels, in hex (the digits
    ``str(ImageHash)`` gives, without its per-bit Python loop, which took half the time)."""
    import imagehash  # validation only: GPU nodes do not have it

    bits = imagehash.phash(prepare(im), hash_size=HASH_SIZE).hash.flatten()
    return np.packbits(bits).tobytes().hex()


def distance(a: str, b: str) -> int:
    """Bits in which two fingerprints differ (Hamming distance)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


class FingerprintStore:
    """Fingerprints by image content hash, in one JSON file (``path``; None: memory only).
    Thread-safe: validation's decoding threads add to it through :meth:`on_decode`."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else None
        self.hashes: dict[str, str] = {}
        self.computed = 0
        self._lock = threading.Lock()
        if self.path and self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            if isinstance(data, dict) and data.get("fingerprint") == FINGERPRINT:
                self.hashes = dict(data.get("hashes") or {})

    def get(self, sha: str) -> str | None:
        with self._lock:
            return self.hashes.get(sha)

    def _put(self, sha: str, fp: str) -> None:
        with self._lock:
            if sha not in self.hashes:
                self.hashes[sha] = fp
                self.computed += 1

    def on_decode(self, facts, im: Image.Image) -> None:
        """The image-decoding hook (``images.inspect``): fingerprint pixels already decoded."""
        if self.get(facts.sha256) is None:
            self._put(facts.sha256, fingerprint(im))

    def ensure(self, records: list[dict], workers: int = 1) -> None:
        """A fingerprint for every record's content, set as ``record["fingerprint"]``; images
        not fingerprinted while decoded (their facts came from the image cache) are opened
        from the file ms-swift reads, in threads."""
        todo = {}
        for r in records:
            if self.get(r["sha256"]) is None:
                todo.setdefault(r["sha256"], r["image"])

        def one(item):
            sha, path = item
            with Image.open(path) as im:
                self._put(sha, fingerprint(im))

        if todo:
            with ThreadPoolExecutor(max(1, workers)) as pool:
                list(pool.map(one, sorted(todo.items())))
        for r in records:
            r["fingerprint"] = self.hashes[r["sha256"]]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        data = {"fingerprint": FINGERPRINT, "hashes": dict(sorted(self.hashes.items()))}
        tmp.write_text(json.dumps(data, separators=(",", ":")) + "\n")
        tmp.replace(self.path)


# --- links between drawings ---------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """Drawings ``i`` and ``j`` (indices into the pooled records, ``i < j``) belong together:
    ``why`` is ``fingerprint`` (``distance`` bits apart), ``name`` or ``group`` (the same
    file-name key or ``group_key`` value, ``key``)."""

    i: int
    j: int
    why: str
    distance: int | None = None
    key: str | None = None


def _packed(fps: list[str]) -> np.ndarray:
    """Fingerprints as rows of uint64 words."""
    raw = b"".join(bytes.fromhex(f) for f in fps)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(fps), -1)


def near_pairs(fps: list[str], max_distance: int, block: int = 256) -> list[tuple[int, int, int]]:
    """Every pair ``(i, j, bits)`` with ``i < j`` whose fingerprints differ in at most
    ``max_distance`` bits: all pairs compared, vectorised (10,000 drawings: 50 M pairs)."""
    if len(fps) < 2 or max_distance < 0:
        return []
    words = _packed(fps)
    n = len(fps)
    out = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = np.zeros((stop - start, n - start), dtype=np.uint16)
        for w in range(words.shape[1]):
            d += np.bitwise_count(words[start:stop, w, None] ^ words[None, start:, w])
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > ii  # the upper triangle: each pair once, no self-pairs
        for a, b in zip(ii[keep], jj[keep], strict=True):
            out.append((start + int(a), start + int(b), int(d[a, b])))
    return out


def name_of(record: dict) -> str:
    """The file name a record's drawing came from (a converted page: its original file)."""
    ref = record.get("original") or record["image"]
    return os.path.basename(ref.split("#", 1)[0])


def name_key(record: dict, pattern: re.Pattern) -> str | None:
    """The key ``pattern`` finds in the record's file name: its group ``part``, else its first
    group, else the whole match; None when it does not match."""
    m = pattern.search(name_of(record))
    if not m:
        return None
    if "part" in m.re.groupindex:
        return m.group("part")
    return m.group(1) if m.re.groups else m.group(0)


def _star(members: dict[str, list[int]], why: str) -> list[Link]:
    """Members sharing a key linked to the first of them (enough to join them; a key shared
    by thousands of drawings does not make millions of pairs)."""
    links = []
    for key, idx in sorted(members.items()):
        for j in idx[1:]:
            links.append(Link(idx[0], j, why, key=key))
    return links


def find_links(records: list[dict], settings: LeakSettings) -> list[Link]:
    """Fingerprint pairs within ``max_distance``, then drawings sharing a ``group_key`` value
    or a file-name key."""
    links = []
    have = [k for k, r in enumerate(records) if r.get("fingerprint")]
    if settings.max_distance >= 0:
        for a, b, d in near_pairs([records[k]["fingerprint"] for k in have], settings.max_distance):
            links.append(Link(have[a], have[b], "fingerprint", distance=d))
    groups: dict[str, list[int]] = {}
    for k, r in enumerate(records):
        if r.get("group") is not None:
            groups.setdefault(str(r["group"]), []).append(k)
    links += _star(groups, "group")
    if settings.name_pattern:
        pattern = re.compile(settings.name_pattern)
        names: dict[str, list[int]] = {}
        for k, r in enumerate(records):
            key = name_key(r, pattern)
            if key is not None:
                names.setdefault(key, []).append(k)
        links += _star(names, "name")
    return links


# --- the report's data --------------------------------------------------------------------


def _fp_distance(a: dict, b: dict) -> int | None:
    if a.get("fingerprint") and b.get("fingerprint"):
        return distance(a["fingerprint"], b["fingerprint"])
    return None


def drawing(r: dict, dataset: str | None, split: str | None) -> dict:
    """How a drawing is named in the leakage report."""
    return {
        "dataset": dataset,
        "file": r["source"],
        "record": r["record"],
        "image": r["image"],
        "name": name_of(r),
        "split": split,
    }


def leak_pairs(records: list[dict], where: list, links: list[Link], datasets: list) -> list:
    """The links whose drawings ended in different splits (``where[k]``: the split of record
    ``k``, None when held out), fingerprint pairs each once, a name or group key once per pair
    of splits it spans, sorted by split pair, distance and names."""
    out, seen_keys = [], set()
    by_key: dict[tuple, list[int]] = {}
    for ln in links:
        if ln.why == "fingerprint":
            si, sj = where[ln.i], where[ln.j]
            if si and sj and si != sj:
                out.append((ln.i, ln.j, ln.why, ln.distance, None))
        else:
            by_key.setdefault((ln.why, ln.key), []).extend([ln.i, ln.j])
    seen_pairs = {frozenset(p[:2]) for p in out}
    for (why, key), idx in sorted(by_key.items()):
        first: dict[str, int] = {}
        for k in sorted(set(idx), key=lambda k: (records[k]["image"], k)):
            if where[k]:
                first.setdefault(where[k], k)
        for a, b in SPLIT_PAIRS:
            if a in first and b in first and (why, key, a, b) not in seen_keys:
                seen_keys.add((why, key, a, b))
                i, j = first[a], first[b]
                if frozenset((i, j)) not in seen_pairs:  # not already a fingerprint pair
                    out.append((i, j, why, _fp_distance(records[i], records[j]), key))
    rows = []
    for i, j, why, d, key in out:
        a, b = sorted((i, j), key=lambda k: ORDER.index(where[k]))
        rows.append(
            {
                "splits": f"{where[a]}-{where[b]}",
                "why": why,
                "distance": d,
                "key": key,
                "a": drawing(records[a], datasets[a], where[a]),
                "b": drawing(records[b], datasets[b], where[b]),
            }
        )
    rows.sort(
        key=lambda r: (
            [f"{a}-{b}" for a, b in SPLIT_PAIRS].index(r["splits"]),
            r["distance"] if r["distance"] is not None else -1,
            r["a"]["image"],
            r["b"]["image"],
        )
    )
    return rows


def leak_report(
    records: list[dict],
    where: list,
    links: list[Link],
    datasets: list,
    settings: LeakSettings,
    bridges: list[dict],
    held_out: list[dict],
) -> dict:
    """The leakage report's data (``leakage.json`` beside the splits): settings, counts per
    split pair, every pair across splits, the bridging newcomers, the links between datasets."""
    pairs = leak_pairs(records, where, links, datasets)
    per_pair = {f"{a}-{b}": 0 for a, b in SPLIT_PAIRS}
    for p in pairs:
        per_pair[p["splits"]] += 1
    across: dict[str, int] = {}
    for ln in links:
        da, db = datasets[ln.i], datasets[ln.j]
        if da != db and da is not None and db is not None:
            key = " / ".join(sorted((da, db)))
            across[key] = across.get(key, 0) + 1
    n_fp = sum(1 for r in records if r.get("fingerprint"))
    by_why: dict[str, int] = {}
    for ln in links:
        by_why[ln.why] = by_why.get(ln.why, 0) + 1
    return {
        "fingerprint": FINGERPRINT if n_fp else None,
        "settings": {
            "max_distance": settings.max_distance,
            "bits": BITS,
            "name_pattern": settings.name_pattern,
            "on_bridge": settings.on_bridge,
            "on_leak": settings.on_leak,
            "max_leaks": settings.max_leaks,
        },
        "drawings": len(records),
        "fingerprinted": n_fp,
        "links": dict(sorted(by_why.items())),
        "leaks": len(pairs),
        "per_split_pair": per_pair,
        "pairs": pairs,
        "across_datasets": dict(sorted(across.items())),
        "bridges": bridges,
        "held_out": held_out,
    }
