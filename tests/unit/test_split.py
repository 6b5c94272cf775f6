"""Stable split assignment and duplicate handling."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter

import pytest

from drawtune.data.assign import SPLITS, split_of
from drawtune.data.split import split_records


def rec(i: int, *, content: str | None = None, group=None, boxes=None, source="a.json") -> dict:
    return {
        "source": source,
        "record": f"images[{i}] (id {i})",
        "image": f"images/{i}.png",
        "sha256": hashlib.sha256((content or f"image-{i}").encode()).hexdigest(),
        "width": 100,
        "height": 100,
        "boxes": boxes if boxes is not None else [{"label": "view", "bbox": [0, 0, 10, 10]}],
        "group": group,
    }


def where(splits: dict) -> dict:
    return {r["record"]: s for s, rows in splits.items() for r in rows}


def test_split_of_is_deterministic():
    keys = [f"key-{i}" for i in range(300)]
    first = [split_of(k, 0.15, 0.25) for k in keys]
    assert first == [split_of(k, 0.15, 0.25) for k in keys]
    assert set(first) <= set(SPLITS)
    # the salt is part of the hash
    assert first != [split_of(k, 0.15, 0.25, salt="other") for k in keys]


def test_split_of_extremes():
    keys = [f"key-{i}" for i in range(200)]
    assert {split_of(k, 0.0, 0.0) for k in keys} == {"train"}
    assert {split_of(k, 0.0, 1.0) for k in keys} == {"test"}
    assert {split_of(k, 1.0, 0.0) for k in keys} == {"val"}


def test_split_of_fractions_roughly_respected():
    n = 2000
    counts = Counter(split_of(f"drawing-{i}", 0.15, 0.25) for i in range(n))
    # binomial standard deviations: test sqrt(2000*.25*.75) = 19, val sqrt(2000*.15*.85) = 16
    assert abs(counts["test"] - 0.25 * n) < 100
    assert abs(counts["val"] - 0.15 * n) < 100
    assert abs(counts["train"] - 0.60 * n) < 120


def test_growing_the_fractions_only_moves_records_one_way():
    # a larger test fraction takes keys from val/train, never gives test keys back
    keys = [f"k{i}" for i in range(500)]
    for k in keys:
        if split_of(k, 0.1, 0.2) == "test":
            assert split_of(k, 0.1, 0.3) == "test"


def test_adding_records_never_moves_existing_ones():
    old = [rec(i) for i in range(50)]
    new = [rec(i) for i in range(50, 70)]
    before, rejects = split_records(old, 0.15, 0.25)
    assert rejects == []
    assert sum(len(v) for v in before.values()) == 50
    mixed = new[:10] + old + new[10:]
    random.Random(1).shuffle(mixed)
    after, rejects = split_records(mixed, 0.15, 0.25)
    assert rejects == []
    w_before, w_after = where(before), where(after)
    assert len(w_after) == 70
    for key, split in w_before.items():
        assert w_after[key] == split
    # every split holds something at this size (otherwise the check above is weak)
    assert all(after[s] for s in SPLITS)


def test_records_sorted_by_content_hash_within_split():
    out, _ = split_records([rec(i) for i in range(40)], 0.2, 0.3)
    for rows in out.values():
        assert [r["sha256"] for r in rows] == sorted(r["sha256"] for r in rows)


def test_duplicate_content_is_rejected_naming_the_first():
    first = rec(1, content="same", source="first.json")
    again = rec(7, content="same", source="second.json")
    out, rejects = split_records([rec(0), first, again, rec(2)], 0.1, 0.2)
    assert sum(len(v) for v in out.values()) == 3
    assert first["record"] in where(out)
    assert len(rejects) == 1
    r = rejects[0]
    assert r["file"] == "second.json"
    assert r["record"] == again["record"]
    assert r["field"] == "image"
    assert r["reason"] == f"duplicate of first.json {first['record']}"


def test_same_content_different_boxes_says_so():
    first = rec(1, content="same")
    other = rec(2, content="same", boxes=[{"label": "note", "bbox": [1, 1, 5, 5]}])
    out, rejects = split_records([first, other], 0.1, 0.2)
    # issue 16, item 9: which copy is right cannot be told, so neither is kept
    assert sum(map(len, out.values())) == 0 and len(rejects) == 2
    reason = rejects[1]["reason"]
    assert reason.startswith(f"same image content as a.json {first['record']}")
    assert "with different boxes: no copy is kept" in reason


def test_group_keeps_records_together():
    records = []
    for g in range(30):
        records += [rec(g * 10 + k, group=f"set-{g}") for k in range(4)]
    out, rejects = split_records(records, 0.2, 0.3)
    assert rejects == []
    by_group: dict = {}
    for s, rows in out.items():
        for r in rows:
            by_group.setdefault(r["group"], set()).add(s)
    assert len(by_group) == 30
    assert all(len(splits) == 1 for splits in by_group.values())
    # the group's split is the one of the group value itself
    for g, splits in by_group.items():
        assert splits == {split_of(g, 0.2, 0.3)}
    # and groups do spread over more than one split
    assert len(set().union(*by_group.values())) > 1


def test_group_value_zero_is_a_group():
    # a falsy but present group value still groups (only None means "no group")
    records = [rec(i, group=0) for i in range(20)]
    out, _ = split_records(records, 0.3, 0.3)
    assert [s for s in SPLITS if out[s]] == [split_of("0", 0.3, 0.3)]


# ------------------------------------------------------------------ stages.split_dataset


def test_split_dataset_writes_splits_and_truth(tmp_path):
    from drawtune.data.split import split_dataset

    records = [rec(i) for i in range(40)] + [rec(99, content="image-3")]
    src = tmp_path / "records.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    outputs = {s: tmp_path / f"{s}.jsonl" for s in SPLITS}
    truth = {s: tmp_path / f"{s}.truth.json" for s in SPLITS}
    summary = split_dataset(
        [src],
        ["view"],
        0.15,
        0.25,
        "drawtune",
        outputs,
        truth,
        tmp_path / "rejects.jsonl",
        tmp_path / "summary.json",
    )
    assert summary["read"] == 41
    assert summary["duplicates_rejected"] == 1
    assert sum(summary[s] for s in SPLITS) == 40
    for s in SPLITS:
        lines = outputs[s].read_text().splitlines()
        assert len(lines) == summary[s]
        coco = json.loads(truth[s].read_text())
        assert len(coco["images"]) == summary[s]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 1


def test_split_dataset_empty_test_split_fails(tmp_path):
    from drawtune.data.split import split_dataset
    from drawtune.errors import StageError

    src = tmp_path / "records.jsonl"
    src.write_text("".join(json.dumps(rec(i)) + "\n" for i in range(5)))
    outputs = {s: tmp_path / f"{s}.jsonl" for s in SPLITS}
    truth = {s: tmp_path / f"{s}.truth.json" for s in SPLITS}
    with pytest.raises(StageError, match="test split is empty"):
        split_dataset(
            [src],
            ["view"],
            0.0,
            1e-12,
            "drawtune",
            outputs,
            truth,
            tmp_path / "rejects.jsonl",
            tmp_path / "summary.json",
        )


def test_train_datasets_keep_only_their_records(tmp_path):
    """keep_datasets: the pooled split's records that a chosen dataset validated, matched by
    source file and record id (the same id in two datasets' files is two records)."""
    from drawtune.data.split import keep_datasets
    from drawtune.jsonio import dump_jsonl, load_jsonl

    def rec(src, i):
        return {"source": src, "record": str(i), "image": f"{src}/{i}.png", "boxes": []}

    simple = [rec("simple.json", i) for i in range(3)]
    full = [rec("full.json", i) for i in range(4)]
    dump_jsonl(simple, tmp_path / "simple.jsonl")
    dump_jsonl(full, tmp_path / "full.jsonl")
    pooled = [full[0], simple[1], full[3], simple[2]]  # a split holds some of each
    dump_jsonl(pooled, tmp_path / "train.jsonl")
    out = tmp_path / "kept.jsonl"
    assert keep_datasets(tmp_path / "train.jsonl", [tmp_path / "simple.jsonl"], out) == (2, 4)
    assert load_jsonl(out) == [simple[1], simple[2]]  # in the split's order
    both = [tmp_path / "simple.jsonl", tmp_path / "full.jsonl"]
    assert keep_datasets(tmp_path / "train.jsonl", both, out) == (4, 4)
    assert load_jsonl(out) == pooled
