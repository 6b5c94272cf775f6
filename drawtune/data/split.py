"""The pooled drawings split into train/val/test, with their truth files, rejects, leakage
report and ledger: repeated images rejected (:func:`unique_images`), linked drawings kept
together (drawtune.data.assign, drawtune.data.leakage), the ledger read and written
(drawtune.data.ledger), and the classification datasets' splits.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from .. import paths
from ..errors import StageError
from ..jsonio import dump_jsonl, load_jsonl, read_json, write_json
from .assign import SPLITS, Assignment, assign
from .convert import truth_coco
from .leakage import LeakSettings, find_links, leak_report
from .ledger import ledger_settings, read_ledger, write_ledger

log = logging.getLogger("drawtune")


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


def split_records(
    records: list[dict],
    val: float,
    test: float,
    salt: str = "drawtune",
    leakage: LeakSettings | None = None,
    ledger: dict | None = None,
    datasets: list | None = None,
    train_only: frozenset | set = frozenset(),
):
    """Assign splits; drop repeated image content (:func:`unique_images`) into rejects.

    Returns ``({split: [records]}, rejects)``; records within a split are sorted by content hash.
    :func:`split_pool` says more (links, bridges, drawings held out)."""
    res = split_pool(records, val, test, salt, leakage, ledger, datasets, train_only)
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
    train_only: frozenset | set = frozenset(),
) -> Pool:
    """:func:`unique_images`, then the near-duplicate links (``leakage``, default settings
    when None) and :func:`assign`. ``datasets``: each record's dataset name, for the report
    and for ``train_only`` (the datasets all of whose drawings go to train)."""
    settings = leakage or LeakSettings()
    names = {id(r): d for r, d in zip(records, datasets or [None] * len(records), strict=True)}
    kept, rejects = unique_images(records)
    kept_names = [names[id(r)] for r in kept]
    links = find_links(kept, settings)
    res = assign(kept, links, val, test, salt, ledger, settings.on_bridge, kept_names, train_only)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for r, s in zip(kept, res.where, strict=True):
        if s is not None:
            out[s].append(r)
    for s in SPLITS:
        out[s].sort(key=lambda r: (r["sha256"], r["image"]))
    return Pool(out, rejects, kept, links, res, kept_names)


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
    train_only: list | None = None,
) -> dict:
    """Pool the validated records, split them, write each split (with COCO truth for
    detection), the rejects and the counts (rule split_dataset). ``summaries``: the datasets'
    validation summaries, in the order of ``record_files``, for ``max_rejected_fraction``;
    ``on_empty``: what a detection train split without a box does (``warn`` or ``fail``).
    ``leakage``: the config's ``leakage`` block; ``ledger``: the file that remembers earlier
    assignments (read, and written when the split succeeds); ``leakage_out`` (and
    ``leakage_copy``, the rule's log, kept when the run fails) receive the leakage report.
    ``train_only``: the datasets (``holdout: false``) whose drawings all go to train
    (:func:`drawtune.data.assign.assign`); needs ``summaries`` for the records' datasets."""
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
    pool = split_pool(records, val, test, salt, settings, prior, datasets, set(train_only or ()))
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
    train_only: list | None = None,
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
