"""Issue 16, the input formats: bad data that used to train silently. Each case is built by
``tests/support/bad_corpus.py``; every record read is either kept or rejected with its file,
record and field, and the good records of the same file are kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import bad_corpus as corpus
import pytest

from drawtune.data.coco import read_coco
from drawtune.data.formats import read_labelme, read_voc
from drawtune.data.readers import detect_format, read_dataset
from drawtune.data.records import Rules
from drawtune.data.split import split_classify, split_dataset, split_records, unique_images
from drawtune.data.stamp import dataset_stamp
from drawtune.data.swift import read_swift
from drawtune.data.validate import validate_dataset
from drawtune.data.yolo import read_yolo
from drawtune.errors import InputError, StageError
from drawtune.jsonio import write_json

CLASSES = ("view", "note", "title_block")


def rules(tmp_path, **kw) -> Rules:
    return Rules(classes=CLASSES, normalised_dir=tmp_path / "norm", **kw)


def by_record(rows) -> dict:
    return {r["record"]: r for r in rows}


# -------------------------------------------------------------------- 1: layouts and keys
def test_yolo_ultralytics_layout_case_and_unmatched_labels(tmp_path):
    want = corpus.yolo_layouts(tmp_path / "y")
    res = read_yolo(tmp_path / "y", rules(tmp_path))
    got = {r["record"]: len(r["boxes"]) for r in res.records}
    assert got == want["records"]
    rej = by_record(res.rejects)
    assert {k: r["field"] for k, r in rej.items()} == want["rejects"]
    assert "matches no image" in rej["labels/train/ghost.txt"]["reason"]
    assert rej["labels/train/ghost.txt"]["file"].endswith("labels/train/ghost.txt")
    assert "does not exist" in rej["train/broken.png"]["reason"]


def test_yolo_roboflow_flat_images_and_cvat_layouts(tmp_path):
    want = corpus.roboflow(tmp_path / "rf")
    res = read_yolo(tmp_path / "rf" / "data.yaml", rules(tmp_path))
    assert res.rejects == []
    assert {r["record"]: len(r["boxes"]) for r in res.records} == want
    want = corpus.flat_images(tmp_path / "flat")
    res = read_yolo(tmp_path / "flat", rules(tmp_path))
    assert res.rejects == []
    assert {r["record"]: len(r["boxes"]) for r in res.records} == want
    want = corpus.cvat_yolo(tmp_path / "cvat")
    assert detect_format(tmp_path / "cvat") == "yolo"
    res = read_dataset({"format": "auto", "annotations": str(tmp_path / "cvat")}, rules(tmp_path))
    assert res.rejects == []
    assert {r["record"]: len(r["boxes"]) for r in res.records} == want


def test_yolo_label_matching_two_images_rejects_both(tmp_path):
    root = tmp_path / "y"
    (root).mkdir()
    (root / "classes.txt").write_text("view\n")
    corpus.drawing(root / "images" / "a.png", 1)
    corpus.drawing(root / "images" / "a.tif", 2)
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    res = read_yolo(root, Rules(classes=("view",), normalised_dir=tmp_path / "n"))
    assert res.records == []
    assert sorted(r["record"] for r in res.rejects) == ["a.png", "a.tif"]
    assert all("several images" in r["reason"] for r in res.rejects)


def test_coco_misspelled_top_level_key_is_named(tmp_path):
    corpus.misspelled_key(tmp_path)
    with pytest.raises(InputError, match=r"'annotation'; did you mean 'annotations'"):
        read_coco(tmp_path / "annotations.json", rules(tmp_path))
    doc = json.loads((tmp_path / "annotations.json").read_text())
    del doc["annotation"]
    corpus.write_json(tmp_path / "annotations.json", doc)
    with pytest.raises(InputError, match=r"no 'annotations' list"):
        read_coco(tmp_path / "annotations.json", rules(tmp_path))


def test_voc_standard_layout(tmp_path):
    corpus.voc_standard(tmp_path / "VOC2012")
    assert detect_format(tmp_path / "VOC2012") == "voc"
    for where in (tmp_path / "VOC2012", tmp_path / "VOC2012" / "Annotations"):
        res = read_voc(where, rules(tmp_path))
        assert res.rejects == []
        assert [Path(r["image"]).parent.name for r in res.records] == ["JPEGImages"] * 2
        assert all(len(r["boxes"]) == 1 for r in res.records)
    ds = {"format": "auto", "annotations": str(tmp_path / "VOC2012")}
    assert len(read_dataset(ds, rules(tmp_path)).records) == 2


def test_voc_file_that_is_not_an_annotation(tmp_path):
    corpus.voc_standard(tmp_path / "v", n=1)
    (tmp_path / "v" / "Annotations" / "meta.xml").write_text("<settings/>")
    res = read_voc(tmp_path / "v", rules(tmp_path))
    assert len(res.records) == 1
    (r,) = res.rejects
    assert "not a Pascal VOC annotation" in r["reason"] and r["file"].endswith("meta.xml")


# ------------------------------------------------------------------- 2: duplicate image ids
def test_coco_duplicate_image_ids_and_bad_types(tmp_path):
    want = corpus.coco_duplicate_ids_and_bad_types(tmp_path)
    res = read_coco(tmp_path / "annotations.json", rules(tmp_path))
    assert sorted(r["record"] for r in res.records) == want["kept"]
    rej = by_record(res.rejects)
    assert {k: r["field"] for k, r in rej.items()} == want["rejects"]
    assert "also the id of images[2]" in rej["images[1] (id 2)"]["reason"]
    assert "expected a list, got a string" in rej["images[3] (id 4)"]["reason"]
    assert "expected a number, got a list" in rej["images[4] (id 5)"]["reason"]


def test_broken_symlink_does_not_stop_the_stamp_and_is_rejected(tmp_path):
    corpus.yolo_layouts(tmp_path / "y")
    ds = {"format": "yolo", "annotations": str(tmp_path / "y" / "data.yaml")}
    assert len(dataset_stamp(ds, workdir=tmp_path / "elsewhere")) == 64
    (tmp_path / "c").mkdir()
    write_json(corpus.coco_doc(tmp_path / "c", 2), tmp_path / "c" / "annotations.json")
    os.symlink(tmp_path / "c" / "nothing.png", tmp_path / "c" / "images" / "dangling.png")
    ds = {"format": "coco", "annotations": str(tmp_path / "c" / "annotations.json")}
    assert len(dataset_stamp(ds, workdir=tmp_path / "elsewhere")) == 64


# ------------------------------------------------------------- 8: symlinks leaving the dataset
def test_symlink_to_outside_the_dataset_is_rejected(tmp_path):
    outside = corpus.drawing(tmp_path / "secret" / "x.png", 9)
    ds = tmp_path / "ds"
    doc = corpus.coco_doc(ds, 2)
    os.symlink(outside, ds / "images" / "link.png")
    doc["images"][1]["file_name"] = "images/link.png"
    corpus.write_json(ds / "annotations.json", doc)
    res = read_coco(ds / "annotations.json", rules(tmp_path))
    assert len(res.records) == 1
    (r,) = res.rejects
    assert r["field"] == "file_name" and "outside the dataset root" in r["reason"]
    # a YOLO image and a LabelMe file linked in from outside: rejected as well
    y = tmp_path / "y"
    corpus.flat_images(y)
    os.symlink(outside, y / "images" / "link.png")
    rej = by_record(read_yolo(y, rules(tmp_path)).rejects)
    assert "outside" in rej["link.png"]["reason"]
    lm = tmp_path / "lm"
    corpus.labelme_windows(lm)
    corpus.write_json(tmp_path / "secret" / "x.json", {"shapes": [], "imagePath": "x.png"})
    os.symlink(tmp_path / "secret" / "x.json", lm / "json" / "x.json")
    res = read_labelme(lm, rules(tmp_path))
    assert len(res.records) == 2
    assert ["outside" in r["reason"] for r in res.rejects] == [True]


# ------------------------------------------------- 9: one image in two datasets, other boxes
def _two_datasets(tmp_path):
    corpus.same_image_two_datasets(tmp_path / "a", tmp_path / "b")
    out = {}
    for name in ("a", "b"):
        out[name] = read_coco(tmp_path / name / "annotations.json", rules(tmp_path)).records
    return out


def test_same_image_with_other_boxes_rejects_every_copy_in_any_order(tmp_path):
    recs = _two_datasets(tmp_path)
    one, rej_one = unique_images(recs["a"] + recs["b"])
    two, rej_two = unique_images(recs["b"] + recs["a"])
    key = lambda rows: sorted((r["image"], r.get("source")) for r in rows)  # noqa: E731
    assert key(one) == key(two) and len(one) == 8
    assert sorted(r["file"] for r in rej_one) == sorted(r["file"] for r in rej_two)
    assert len(rej_one) == 2 and all("different boxes" in r["reason"] for r in rej_one)
    # the same boxes: one copy, the same one whatever the order
    dup = dict(recs["a"][0], source="z/annotations.json", image="z/images/c0.png")
    kept1, _ = unique_images([recs["a"][0], dup])
    kept2, _ = unique_images([dup, recs["a"][0]])
    assert kept1 == kept2 and len(kept1) == 1
    splits1, _ = split_records(recs["a"] + recs["b"], 0.2, 0.2)
    splits2, _ = split_records(recs["b"] + recs["a"], 0.2, 0.2)
    assert splits1 == splits2


def test_split_rejects_count_towards_max_rejected_fraction(tmp_path):
    recs = _two_datasets(tmp_path)
    files, summaries = [], []
    for name in ("a", "b"):
        f = tmp_path / f"{name}.records.jsonl"
        f.write_text("".join(json.dumps(r) + "\n" for r in recs[name]))
        files.append(f)
        s = tmp_path / f"{name}.summary.json"
        write_json({"dataset": name, "read": 5, "converted": 5, "rejected": 0}, s)
        summaries.append(s)
    outs = {s: tmp_path / f"{s}.jsonl" for s in ("train", "val", "test")}
    truth = {s: tmp_path / f"{s}.coco.json" for s in ("train", "val", "test")}
    args = (files, list(CLASSES), 0.2, 0.3, "drawtune", outs, truth)
    with pytest.raises(StageError, match=r"dataset a: 1 of 5 records rejected \(1 of them as"):
        split_dataset(*args, tmp_path / "rej.jsonl", tmp_path / "s.json", summaries, 0.1)
    summary = split_dataset(*args, tmp_path / "rej.jsonl", tmp_path / "s.json", summaries, 0.2)
    assert summary["duplicates_rejected"] == 2
    assert len((tmp_path / "rej.jsonl").read_text().splitlines()) == 2


# --------------------------------------------------------------------------- 11 and on_empty
def test_bom_files_are_read(tmp_path):
    corpus.coco_duplicate_ids_and_bad_types(tmp_path / "coco")  # written with a BOM
    assert detect_format(tmp_path / "coco" / "annotations.json") == "coco"
    corpus.voc_standard(tmp_path / "voc")  # XML with a BOM
    assert len(read_voc(tmp_path / "voc", rules(tmp_path)).records) == 2
    corpus.drawing(tmp_path / "s" / "a.png", 1)
    row = {"messages": [{"role": "assistant", "content": "[]"}], "images": ["a.png"]}
    (tmp_path / "s" / "a.jsonl").write_text(corpus.BOM + json.dumps(row) + "\n", encoding="utf-8")
    assert len(read_swift(tmp_path / "s" / "a.jsonl", rules(tmp_path), "pixels").records) == 1
    root = tmp_path / "y"
    corpus.flat_images(root)
    (root / "classes.txt").write_text(corpus.BOM + "view\nnote\ntitle_block\n", encoding="utf-8")
    assert len(read_yolo(root, rules(tmp_path)).records) == 2


def test_labelme_windows_paths_and_embedded_image(tmp_path):
    corpus.labelme_windows(tmp_path / "lm")
    assert detect_format(tmp_path / "lm") == "labelme"  # its JSON files are in json/
    res = read_labelme(tmp_path / "lm", rules(tmp_path))
    assert res.rejects == []
    recs = {Path(r["source"]).name: r for r in res.records}
    assert recs["w0.json"]["image"].endswith("lm/images/w0.png")
    embedded = Path(recs["w1.json"]["image"])
    assert embedded.is_relative_to(tmp_path / "norm") and embedded.read_bytes() == corpus.png_bytes(
        5
    )
    assert recs["w1.json"]["boxes"] == [{"label": "view", "bbox": [20.0, 10.0, 120.0, 80.0]}]


def _validate(tmp_path, ds):
    out = tmp_path / "out"
    return validate_dataset(
        ds, rules(tmp_path), None, 0.2, out / "r.jsonl", out / "j.jsonl", out / "s.json", "bare"
    )


def test_dataset_without_a_box_warns_or_fails(tmp_path, capsys):
    corpus.no_boxes(tmp_path / "d")
    ds = {"format": "coco", "annotations": str(tmp_path / "d" / "annotations.json")}
    _validate(tmp_path, ds)
    assert "dataset bare: none of its 3 drawings has a box" in capsys.readouterr().err
    with pytest.raises(StageError, match="none of its 3 drawings has a box.*on_empty is fail"):
        _validate(tmp_path, dict(ds, on_empty="fail"))


def test_labelme_rectangle_given_by_its_four_corners(tmp_path):
    corpus.drawing(tmp_path / "a.png", 1)
    pts = [[120, 10], [120, 80], [20, 80], [20, 10]]
    shape = {"label": "view", "points": pts, "shape_type": "rectangle"}
    corpus.write_json(tmp_path / "a.json", {"shapes": [shape], "imagePath": "a.png"})
    (r,) = read_labelme(tmp_path, rules(tmp_path)).records
    assert r["boxes"] == [{"label": "view", "bbox": [20.0, 10.0, 120.0, 80.0]}]


def test_classification_split_rejects_count_too(tmp_path):
    rows = [
        {
            "source": "l.csv",
            "record": f"line {k}",
            "image": f"{k}.png",
            "sha256": f"s{k}",
            "width": 9,
            "height": 9,
            "boxes": [],
            "label": "a",
            "group": None,
        }
        for k in range(4)
    ]
    rows[1] = dict(rows[1], sha256="s0", label="b")  # the first drawing again, another label
    f = tmp_path / "r.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = tmp_path / "summary.json"
    write_json({"dataset": "sheets", "read": 4, "converted": 4, "rejected": 0}, s)
    outs = {k: tmp_path / f"{k}.jsonl" for k in ("train", "val", "test")}
    with pytest.raises(StageError, match="dataset sheets: 2 of 4 records rejected"):
        split_classify(f, 0.2, 0.3, "x", outs, tmp_path / "rej.jsonl", tmp_path / "o.json", s, 0.2)


def test_deep_nesting_and_yolo_class_numbers(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text('{"images": ' + deep + "}")
    with pytest.raises(InputError, match="nested too deeply"):
        read_coco(tmp_path / "deep.json", rules(tmp_path))
    corpus.drawing(tmp_path / "a.png", 1)
    good = {"messages": [{"role": "assistant", "content": "[]"}], "images": ["a.png"]}
    (tmp_path / "s.jsonl").write_text(deep + "\n" + json.dumps(good) + "\n")
    res = read_swift(tmp_path / "s.jsonl", rules(tmp_path), "pixels")
    assert len(res.records) == 1 and "nested too deeply" in res.rejects[0]["reason"]
    root = tmp_path / "y"
    corpus.flat_images(root)
    (root / "data.yaml").write_text("names: {'0': view, '1': note, '2': title_block}\n")
    assert len(read_yolo(root, rules(tmp_path)).records) == 2
    (root / "data.yaml").write_text("names: {0: view, 2: title_block}\n")  # class 1 missing
    with pytest.raises(InputError, match="without gaps"):
        read_yolo(root, rules(tmp_path))


def test_train_split_without_a_box_warns_or_fails(tmp_path, capsys):
    rows = [
        {
            "source": "a.json",
            "record": f"images[{k}]",
            "image": f"{k}.png",
            "sha256": f"s{k}",
            "width": 9,
            "height": 9,
            "boxes": [],
            "group": None,
        }
        for k in range(30)
    ]
    f = tmp_path / "r.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = {k: tmp_path / f"{k}.jsonl" for k in ("train", "val", "test")}
    truth = {k: tmp_path / f"{k}.coco.json" for k in ("train", "val", "test")}
    args = ([f], list(CLASSES), 0.2, 0.3, "x", outs, truth, tmp_path / "rej.jsonl", tmp_path / "s")
    split_dataset(*args)
    assert "the train split's" in capsys.readouterr().err
    with pytest.raises(StageError, match="no box at all.*on_empty is fail"):
        split_dataset(*args, on_empty="fail")


def test_windows_paths_in_any_format(tmp_path):
    doc = corpus.coco_doc(tmp_path, 3)
    doc["images"][0]["file_name"] = "images\\c0.png"
    doc["images"][1]["file_name"] = "D:\\drawings\\c1.png"
    corpus.write_json(tmp_path / "annotations.json", doc)
    res = read_coco(tmp_path / "annotations.json", rules(tmp_path))
    assert [r["record"] for r in res.records] == ["images[0] (id 1)", "images[2] (id 3)"]
    assert res.records[0]["image"].endswith("images/c0.png")
    (r,) = res.rejects
    assert r["field"] == "file_name" and "absolute image path" in r["reason"]


def test_yolo_negative_never_takes_another_splits_label(tmp_path):
    root = tmp_path / "y"
    corpus.yolo_layouts(root)
    corpus.drawing(root / "images" / "train" / "x.png", 80)  # a negative of train
    (root / "labels" / "val" / "x.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # its image is gone
    res = read_yolo(root, rules(tmp_path))
    assert by_record(res.records)["train/x.png"]["boxes"] == []
    assert "matches no image" in by_record(res.rejects)["labels/val/x.txt"]["reason"]
