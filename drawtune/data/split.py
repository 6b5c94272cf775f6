"""Stable train/val/test assignment that keeps near-duplicates together.

A drawing's split depends on its key (the image's content hash, or a configured group value so
that sheets of one drawing set stay together) and the split fractions. Drawings linked by
``data.leakage`` (near-duplicate fingerprints, one file-name key, one group value) form a group
that goes to one split. The ledger (``resources/splits/ledger.json``) remembers where every
drawing went, so adding drawings never moves an existing one: a newcomer joining a group goes to
the group's split, and a newcomer linking groups already in different splits moves nothing, is
reported with both groups' drawings and is placed with the nearest one or held out.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl, read_json, write_json
from .convert import truth_coco
from .leakage import LeakSettings, Link, drawing, find_links, leak_report

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


@dataclass
class Assignment:
    """Where each drawing went: ``where[k]`` is record ``k``'s split (None: held out)."""

    where: list
    bridges: list = field(default_factory=list)
    held_out: list = field(default_factory=list)


def _components(n: int, links: list[Link]) -> list[int]:
    """Union-find over the links: a root index per record."""
    parent = list(range(n))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for ln in links:
        a, b = root(ln.i), root(ln.j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [root(k) for k in range(n)]


def _group_key(members: list[dict]) -> str:
    """The key a group new to the ledger is split by: its smallest configured group value, else
    its smallest content hash (a drawing on its own: its content hash, as ever)."""
    groups = [str(r["group"]) for r in members if r.get("group") is not None]
    return min(groups) if groups else min(r["sha256"] for r in members)


def _weight(ln: Link) -> int:
    return ln.distance if ln.distance is not None else 0  # a name or group key: no distance


def _reach(adj: dict, sources: list[int], known: set) -> dict:
    """Shortest link distance from ``sources`` to the records of their group, passing only through
    newcomers (a drawing of the ledger relays nothing: it belongs to its own group):
    ``{k: (distance, source)}``."""
    best = {k: (0, k) for k in sources}
    start = set(sources)
    heap = [(0, k, k) for k in sorted(sources)]
    while heap:
        d, k, src = heapq.heappop(heap)
        if best[k] != (d, src) or (k in known and k not in start):
            continue
        for j, w in adj.get(k, ()):
            cand = (d + w, src)
            if j not in best or cand < best[j]:
                best[j] = cand
                heapq.heappush(heap, (d + w, j, src))
    return best


def assign(
    records: list[dict],
    links: list[Link],
    val: float,
    test: float,
    salt: str,
    ledger: dict | None = None,
    on_bridge: str = "place",
    datasets: list | None = None,
) -> Assignment:
    """The split of every record: a group (records joined by ``links``) with drawings in the
    ``ledger`` (content hash -> split) keeps their split and takes its newcomers along; a new
    group goes where its :func:`_group_key` hashes to. A newcomer linked (through newcomers
    only) to ledger drawings of more than one split is a bridge: nothing moves, it is reported
    with the nearest drawing of each split and goes to the nearest one's split
    (``on_bridge: place``) or into no split (``hold_out``)."""
    ledger = ledger or {}
    datasets = datasets or [None] * len(records)
    roots = _components(len(records), links)
    comps: dict[int, list[int]] = {}
    for k, r in enumerate(roots):
        comps.setdefault(r, []).append(k)
    adj: dict[int, list] = {}
    for ln in links:
        adj.setdefault(ln.i, []).append((ln.j, _weight(ln)))
        adj.setdefault(ln.j, []).append((ln.i, _weight(ln)))
    known = {k for k, r in enumerate(records) if r["sha256"] in ledger}
    out = Assignment(where=[None] * len(records))
    for _, comp in sorted(comps.items()):
        prior = {}
        for k in comp:
            if k in known:
                prior.setdefault(ledger[records[k]["sha256"]], []).append(k)
        if not prior:
            s = split_of(_group_key([records[k] for k in comp]), val, test, salt)
            for k in comp:
                out.where[k] = s
            continue
        for s, ks in prior.items():
            for k in ks:
                out.where[k] = s
        newcomers = [k for k in comp if k not in known]
        if not newcomers:
            continue
        if len(prior) == 1:
            (s,) = prior
            for k in newcomers:
                out.where[k] = s
            continue
        reach = {s: _reach(adj, ks, known) for s, ks in sorted(prior.items())}
        for k in newcomers:
            near = sorted(
                (reach[s][k][0], SPLITS.index(s), s, reach[s][k][1]) for s in reach if k in reach[s]
            )
            if len(near) == 1:
                out.where[k] = near[0][2]
                continue
            placed = near[0][2] if on_bridge == "place" else None
            out.where[k] = placed
            row = {
                "newcomer": drawing(records[k], datasets[k], placed),
                "links": [
                    dict(drawing(records[src], datasets[src], s), distance=d)
                    for d, _, s, src in near
                ],
                "placed": placed or "held out",
            }
            out.bridges.append(row)
            if placed is None:
                out.held_out.append(
                    dict(
                        drawing(records[k], datasets[k], None),
                        reason="links drawings of "
                        + " and ".join(s for _, _, s, _ in near)
                        + " (leakage.on_bridge: hold_out)",
                    )
                )
    return out


def split_records(
    records: list[dict],
    val: float,
    test: float,
    salt: str = "drawtune",
    leakage: LeakSettings | None = None,
    ledger: dict | None = None,
    datasets: list | None = None,
):
    """Assign splits; drop repeated image content (:func:`unique_images`) into rejects.

    Returns ``({split: [records]}, rejects)``; records within a split are sorted by content hash.
    :func:`split_pool` says more (links, bridges, drawings held out)."""
    res = split_pool(records, val, test, salt, leakage, ledger, datasets)
    return res.splits, res.rejects


@dataclass
class Pool:
    """The pooled drawings split: ``splits``, ``rejects`` (repeated images), the ``kept``
    records with their ``links``, ``assignment`` and ``datasets`` (a name per kept record)."""

    splits: dict
    rejects: list
    kept: list
    links: list
    assignment: Assignment
    datasets: list


def split_pool(
    records: list[dict],
    val: float,
    test: float,
    salt: str = "drawtune",
    leakage: LeakSettings | None = None,
    ledger: dict | None = None,
    datasets: list | None = None,
) -> Pool:
    """:func:`unique_images`, then the near-duplicate links (``leakage``, default settings
    when None) and :func:`assign`. ``datasets``: each record's dataset name, for the report."""
    settings = leakage or LeakSettings()
    names = {id(r): d for r, d in zip(records, datasets or [None] * len(records), strict=True)}
    kept, rejects = unique_images(records)
    kept_names = [names[id(r)] for r in kept]
    links = find_links(kept, settings)
    res = assign(kept, links, val, test, salt, ledger, settings.on_bridge, kept_names)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r, s in zip(kept, res.where, strict=True):
        if s is not None:
            out[s].append(r)
    for s in SPLITS:
        out[s].sort(key=lambda r: (r["sha256"], r["image"]))
    return Pool(out, rejects, kept, links, res, kept_names)


def ledger_settings(val: float, test: float, salt: str) -> dict:
    return {"val": val, "test": test, "salt": salt}


def read_ledger(path, settings: dict) -> dict:
    """Content hash -> split of every drawing split before with the same fractions and salt;
    empty when there is none, or when those settings changed (a new split is drawn)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except Exception:  # noqa: BLE001 - a damaged ledger is redrawn, and the log says so
        log.warning("split ledger %s cannot be read: the split is drawn anew", path)
        return {}
    if data.get("settings") != settings:
        log.info("split settings changed since the ledger %s was written: drawn anew", path)
        return {}
    return dict(data.get("splits") or {})


def write_ledger(path, settings: dict, ledger: dict, pool: Pool) -> None:
    """The ledger with this split's assignments added (drawings held out are not recorded)."""
    merged = dict(ledger)
    for r, s in zip(pool.kept, pool.assignment.where, strict=True):
        if s is not None:
            merged.setdefault(r["sha256"], s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_json({"settings": settings, "splits": dict(sorted(merged.items()))}, tmp)
    tmp.replace(path)


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
    warn(message)


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
    leakage: dict | None = None,
    ledger=None,
    leakage_out=None,
    leakage_copy=None,
) -> dict:
    """Pool the validated records, split them, write each split (with COCO truth for
    detection), the rejects and the counts (rule split_dataset). ``summaries``: the datasets'
    validation summaries, in the order of ``record_files``, for ``max_rejected_fraction``;
    ``on_empty``: what a detection train split without a box does (``warn`` or ``fail``).
    ``leakage``: the config's ``leakage`` block; ``ledger``: the file that remembers earlier
    assignments (read, and written when the split succeeds); ``leakage_out`` (and
    ``leakage_copy``, the rule's log, kept when the run fails) receive the leakage report."""
    records, origin, datasets = [], {}, []
    for k, f in enumerate(record_files):
        rows = load_jsonl(f)
        name = read_json(summaries[k])["dataset"] if summaries else None
        if summaries:
            origin.update({(r["source"], r["record"]): name for r in rows})
        records.extend(rows)
        datasets.extend([name] * len(rows))
    settings = LeakSettings.of(leakage)
    ledger_key = ledger_settings(val, test, salt)
    prior = read_ledger(ledger, ledger_key) if ledger else {}
    pool = split_pool(records, val, test, salt, settings, prior, datasets)
    splits, rejects = pool.splits, pool.rejects
    for s in SPLITS:
        dump_jsonl(splits[s], outputs[s])
        if truth_outputs:  # detection: COCO ground truth per split
            write_json(truth_coco(splits[s], classes), truth_outputs[s])
    dump_jsonl(rejects, rejects_out)
    report = leak_report(
        pool.kept,
        pool.assignment.where,
        pool.links,
        pool.datasets,
        settings,
        pool.assignment.bridges,
        pool.assignment.held_out,
    )
    for target in (leakage_out, leakage_copy):
        if target is not None:
            write_json(report, target)
    summary = {s: len(splits[s]) for s in SPLITS}
    summary["duplicates_rejected"] = len(rejects)
    summary["held_out"] = len(pool.assignment.held_out)
    summary["near_duplicate_leaks"] = report["leaks"]
    summary["read"] = len(records)
    write_json(summary, summary_out)
    for r in rejects:
        log.warning("rejected %s %s [%s]: %s", r["file"], r["record"], r["field"], r["reason"])
    say_leakage(report, leakage_copy or leakage_out)
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
    check_leaks(report, settings, leakage_copy or leakage_out)
    if ledger:
        write_ledger(ledger, ledger_key, prior, pool)
    log.info("split: %s", summary)
    return summary


def _named(d: dict) -> str:
    where = f"{d['dataset']}: " if d.get("dataset") else ""
    return f"{where}{d['name']} ({d['file']} {d['record']})"


def say_leakage(report: dict, where) -> None:
    """Bridging newcomers and pairs across splits, in the log and on the terminal."""
    for b in report["bridges"]:
        links = "; ".join(
            f"{ln['split']}: {_named(ln)} ({ln['distance']} bits)" for ln in b["links"]
        )
        warn(
            f"{_named(b['newcomer'])} is a near-duplicate of drawings already in different "
            f"splits ({links}); nothing moved, it went to {b['placed']}"
        )
    if report["leaks"]:
        per = ", ".join(f"{k} {v}" for k, v in report["per_split_pair"].items() if v)
        warn(
            f"{report['leaks']} near-duplicate pair(s) across splits ({per}): the test score "
            f"may measure memory; see {where}"
        )
    log.info(
        "leakage: %d of %d drawings fingerprinted, links %s, %d pair(s) across splits",
        report["fingerprinted"],
        report["drawings"],
        report["links"],
        report["leaks"],
    )


def check_leaks(report: dict, settings: LeakSettings, where) -> None:
    """StageError with ``on_leak: fail`` when more than ``max_leaks`` pairs cross splits."""
    if settings.on_leak == "fail" and report["leaks"] > settings.max_leaks:
        raise StageError(
            f"{report['leaks']} near-duplicate pair(s) across splits, more than "
            f"leakage.max_leaks {settings.max_leaks} (on_leak is fail); see {where}"
        )


def warn(message: str) -> None:
    log.warning("%s", message)
    print(f"drawtune: warning: {message}", file=sys.stderr, flush=True)


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
    leakage: dict | None = None,
    ledger=None,
    leakage_out=None,
    leakage_copy=None,
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
        leakage=leakage,
        ledger=ledger,
        leakage_out=leakage_out,
        leakage_copy=leakage_copy,
    )


def keep_datasets(records_file, validated_files, out_file) -> tuple[int, int]:
    """The records of one pooled split (``records_file``) that come from the datasets whose
    validated records are ``validated_files`` (matched by source file and record id), written
    to ``out_file``: an experiment's ``train_datasets``. Returns (kept, read)."""
    chosen = {(r["source"], r["record"]) for f in validated_files for r in load_jsonl(f)}
    rows = load_jsonl(records_file)
    kept = [r for r in rows if (r["source"], r["record"]) in chosen]
    dump_jsonl(kept, out_file)
    return len(kept), len(rows)
