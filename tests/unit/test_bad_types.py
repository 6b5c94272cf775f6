"""Issue 16, item 7: a value of an unexpected JSON type anywhere in an annotation file.
Every value of a small good file (COCO, LabelMe, ms-swift JSONL) is replaced in turn by each
value of another JSON type: never a traceback, a reject naming file, record and field for the
record the value belongs to, and the file's other records kept unchanged."""

from __future__ import annotations

import copy
import json

import bad_corpus as corpus

from drawtune.data.coco import read_coco
from drawtune.data.formats import read_labelme
from drawtune.data.records import Rules
from drawtune.data.swift import read_swift
from drawtune.errors import InputError

CLASSES = ("view", "note", "title_block")


def rules(tmp_path) -> Rules:
    return Rules(classes=CLASSES, normalised_dir=tmp_path / "norm")


WRONG = [None, True, 1.5, "x", [], [1, 2], {}, {"k": 1}]


def _kind(v) -> str:
    return "number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__


def _paths(node, prefix=()):
    yield prefix
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _mutations(doc, paths):
    for path in paths:
        if not path:
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        for value in WRONG:
            if _kind(value) != _kind(parent[path[-1]]):
                new = copy.deepcopy(doc)
                target = new
                for k in path[:-1]:
                    target = target[k]
                target[path[-1]] = value
                yield path, value, new


def _same(record, baseline):
    return {k: v for k, v in record.items() if k != "record"} == {
        k: v for k, v in baseline.items() if k != "record"
    }


def test_coco_any_wrong_type_rejects_only_its_record(tmp_path):
    """Every value of a COCO file replaced by each value of another JSON type: never a
    traceback; the file is refused (InputError) only for a top-level list; the drawing the
    value belongs to is kept unchanged or a reject says why; the other drawing is kept."""
    doc = corpus.coco_doc(tmp_path, 2, boxes_per_image=2)
    path = tmp_path / "annotations.json"
    corpus.write_json(path, doc)
    base = read_coco(path, rules(tmp_path)).records
    assert len(base) == 2
    owner = {("images", i): i for i in range(2)}
    owner.update({("annotations", k): a["image_id"] - 1 for k, a in enumerate(doc["annotations"])})
    n = 0
    for where, value, new in _mutations(doc, list(_paths(doc))):
        corpus.write_json(path, new)
        try:
            res = read_coco(path, rules(tmp_path))
        except InputError:
            assert len(where) == 1, (where, value)
            continue
        n += 1
        hit = owner.get(where[:2])  # None: a category, which both drawings use
        for i, b in enumerate(base):
            got = [r for r in res.records if r["image"] == b["image"]]
            if hit is None or i == hit:
                assert (got and _same(got[0], b)) or res.rejects, (where, value)
            else:
                assert got and _same(got[0], b), (where, value, res.rejects)
        for r in res.rejects:
            assert r["file"] and r["record"] and r["reason"], r
    assert n > 100


def test_labelme_any_wrong_type_rejects_only_its_file(tmp_path):
    corpus.drawing(tmp_path / "a.png", 1)
    corpus.drawing(tmp_path / "b.png", 2)
    shape = {"label": "view", "points": [[20, 10], [120, 80]], "shape_type": "rectangle"}
    doc = {"shapes": [shape], "imagePath": "a.png", "imageWidth": 200, "imageHeight": 100}
    corpus.write_json(tmp_path / "b.json", dict(doc, imagePath="b.png"))
    base = {r["source"]: r for r in read_labelme(tmp_path, rules(tmp_path)).records}
    corpus.write_json(tmp_path / "a.json", doc)
    for where, value, new in _mutations(doc, list(_paths(doc))):
        corpus.write_json(tmp_path / "a.json", new)
        res = read_labelme(tmp_path, rules(tmp_path))
        assert [r["source"] for r in res.records if r["source"] in base] == list(base)
        assert len(res.records) + len(res.rejects) == 2, (where, value)
        for r in res.rejects:
            assert r["file"].endswith("a.json") and r["reason"], r


def test_swift_any_wrong_type_rejects_only_its_line(tmp_path):
    corpus.drawing(tmp_path / "a.png", 1)
    corpus.drawing(tmp_path / "b.png", 2)
    answer = '```json\n[{"bbox_2d": [20, 10, 120, 80], "label": "view"}]\n```'
    row = {
        "messages": [
            {"role": "user", "content": "<image>Find"},
            {"role": "assistant", "content": answer},
        ],
        "images": ["a.png"],
    }
    objects = {
        "images": [{"path": "a.png"}],
        "objects": {"ref": ["view"], "bbox": [[20, 10, 120, 80]], "bbox_type": "real"},
    }
    good = json.dumps(dict(row, images=["b.png"]))
    path = tmp_path / "a.jsonl"
    for doc in (row, objects):
        for where, value, new in _mutations(doc, list(_paths(doc))):
            path.write_text(json.dumps(new) + "\n" + good + "\n")
            res = read_swift(path, rules(tmp_path), "pixels")
            assert [r["record"] for r in res.records if r["image"].endswith("b.png")] == ["line 2"]
            assert res.n_read == 2, (where, value)
            assert all(r["record"] == "line 1" for r in res.rejects), res.rejects


def test_coco_bad_category_entries_reject_the_drawings_that_use_them(tmp_path):
    doc = corpus.coco_doc(tmp_path, 2, boxes_per_image=2)  # both use categories 1 and 2
    doc["categories"] += [{"id": True, "name": "x"}, {"id": 2, "name": 7}]
    corpus.write_json(tmp_path / "a.json", doc)
    res = read_coco(tmp_path / "a.json", rules(tmp_path))
    assert res.records == []
    fields = sorted((r["record"], r["field"]) for r in res.rejects)
    assert ("categories[2]", "id") in fields and ("categories[3]", "name") in fields
    images = [r for r in res.rejects if r["record"].startswith("images")]
    assert len(images) == 2 and all("categories[3] is unusable" in r["reason"] for r in images)
