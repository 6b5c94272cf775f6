"""Classification datasets: readers (class folders, CSV), answer parsing, metrics against
hand-computed numbers, pairing of infer rows, the confusion chart and the synthetic data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from drawtune.data.convert import class_row as swift_row
from drawtune.data.convert import default_prompt
from drawtune.data.labels import classes_of, read_classify
from drawtune.data.records import Rules
from drawtune.data.synth_classify import synth_classify, synth_label
from drawtune.errors import InputError
from drawtune.eval.classify_metrics import classification_metrics
from drawtune.eval.parse_class import parse_class
from drawtune.eval.score import score_classification
from drawtune.report.charts import confusion_chart


def rules(tmp_path, **kw) -> Rules:
    # classes of Rules are box labels; the classification reader must not use them
    return Rules(classes=("view",), normalised_dir=tmp_path / "norm", **kw)


def png(path: Path, size=(200, 100), color=255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, color).save(path)
    return path


def accounted(res, n_read: int):
    assert len(res.records) + len(res.rejects) == n_read == res.n_read
    return res


# --------------------------------------------------------------------------------- folders
def test_folders_classes_from_subfolders_aliases_and_rejects(tmp_path):
    root = tmp_path / "ds"
    png(root / "Mechanical" / "a.png", color=10)
    png(root / "Mechanical" / "sub" / "b.jpg", color=20)
    png(root / "electrical" / "c.png", color=30)
    (root / "electrical" / "notes.txt").write_text("x")
    (root / "electrical" / "README").write_text("x")
    (root / "electrical" / ".DS_Store").write_bytes(b"\0")
    png(root / ".hidden_dir" / "x.png")  # hidden folder: neither a class nor its images
    png(root / "loose.png")
    (root / "empty_class").mkdir()
    ds = {"format": "folders", "annotations": str(root), "aliases": {"Mechanical": "mechanical"}}

    assert classes_of(ds) == ["electrical", "empty_class", "mechanical"]
    res = accounted(read_classify(ds, rules(tmp_path)), 6)
    got = {r["record"]: r["label"] for r in res.records}
    assert got == {
        "Mechanical/a.png": "mechanical",
        "Mechanical/sub/b.jpg": "mechanical",
        "electrical/c.png": "electrical",
    }
    r = res.records[0]
    assert r["boxes"] == [] and r["group"] is None and r["source"] == str(root)
    assert (r["width"], r["height"]) == (200, 100)
    assert r["sha256"] == hashlib.sha256((root / r["record"]).read_bytes()).hexdigest()
    assert list(r) == [
        "source",
        "record",
        "image",
        "sha256",
        "width",
        "height",
        "boxes",
        "label",
        "group",
    ]
    rej = {x["record"]: (x["file"], x["field"], x["reason"]) for x in res.rejects}
    assert rej == {
        "electrical/README": (str(root), "image", "not an image (no suffix)"),
        "electrical/notes.txt": (str(root), "image", "not an image (suffix .txt)"),
        "loose.png": (str(root), "image", "file outside a class folder"),
    }


def test_folders_drop_and_closed_class_list(tmp_path):
    root = tmp_path / "ds"
    png(root / "a" / "1.png", color=1)
    png(root / "b" / "2.png", color=2)
    png(root / "junk" / "3.png", color=3)
    ds = {"format": "folders", "annotations": str(root), "drop": ["junk"]}
    assert classes_of(ds) == ["a", "b"]
    res = accounted(read_classify(ds, rules(tmp_path)), 3)
    assert [r["label"] for r in res.records] == ["a", "b"]
    assert res.rejects == [
        {
            "file": str(root),
            "record": "junk/3.png",
            "field": "label",
            "reason": "label 'junk' is in drop",
        }
    ]

    closed = {"format": "folders", "annotations": str(root), "classes": ["a", "junk"]}
    assert classes_of(closed) == ["a", "junk"]
    res = accounted(read_classify(closed, rules(tmp_path)), 3)
    assert [r["label"] for r in res.records] == ["a", "junk"]
    (rej,) = res.rejects
    assert (rej["record"], rej["field"]) == ("b/2.png", "label")
    assert rej["reason"] == "unknown label 'b' (classes: a, junk)"


def test_folders_multi_page_tiff_and_pdf_give_one_record_per_page(tmp_path):
    root = tmp_path / "ds"
    (root / "plans").mkdir(parents=True)
    pages = [Image.new("RGB", (120, 80), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    pages[0].save(root / "plans" / "set.tif", save_all=True, append_images=pages[1:])
    pages[0].save(root / "plans" / "set.pdf", save_all=True, append_images=pages[1:2])
    res = accounted(read_classify({"annotations": str(root)}, rules(tmp_path)), 5)
    assert res.rejects == []
    assert [r["record"] for r in res.records] == [
        "plans/set.pdf#1",
        "plans/set.pdf#2",
        "plans/set.tif#1",
        "plans/set.tif#2",
        "plans/set.tif#3",
    ]
    assert len({r["sha256"] for r in res.records}) == 5  # each page is its own picture
    assert all(Path(r["image"]).parent == tmp_path / "norm" for r in res.records)
    assert {r["label"] for r in res.records} == {"plans"}


def test_folders_broken_image_is_rejected_with_the_image_problem(tmp_path):
    root = tmp_path / "ds"
    png(root / "a" / "ok.png")
    (root / "a" / "bad.png").write_bytes(b"not a png")
    res = accounted(
        read_classify({"format": "folders", "annotations": str(root)}, rules(tmp_path)), 2
    )
    (rej,) = res.rejects
    assert (rej["record"], rej["field"]) == ("a/bad.png", "image")
    assert rej["reason"].startswith("unreadable image")


def test_missing_paths_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        classes_of({"format": "folders", "annotations": str(tmp_path / "nope")})
    with pytest.raises(InputError, match="no such file"):
        read_classify({"format": "csv", "annotations": str(tmp_path / "x.csv")}, rules(tmp_path))
    with pytest.raises(InputError, match="unknown classification format 'coco'"):
        classes_of({"format": "coco", "annotations": str(tmp_path)})


# ------------------------------------------------------------------------------------- CSV
def test_csv_good_rows_custom_columns_group_and_images_root(tmp_path):
    imgs = tmp_path / "imgs"
    png(imgs / "a.png", color=1)
    png(imgs / "sub" / "b.png", color=2)
    csv_file = tmp_path / "meta" / "labels.csv"
    csv_file.parent.mkdir()
    csv_file.write_text(
        'file,kind,set,notes\na.png,arch,S1,first\n\n"sub/b.png", Struct ,,"with, comma"\n'
    )
    ds = {
        "format": "csv",
        "annotations": str(csv_file),
        "images": str(imgs),
        "columns": {"image": "file", "label": "kind"},
        "aliases": {"Struct": "structural"},
        "group_key": "set",
    }
    assert classes_of(ds) == ["arch", "structural"]
    res = accounted(read_classify(ds, rules(tmp_path)), 2)
    assert [(r["record"], r["label"], r["group"]) for r in res.records] == [
        ("line 2", "arch", "S1"),
        ("line 4", "structural", None),
    ]
    assert res.records[1]["image"] == str(imgs / "sub" / "b.png")
    assert res.records[0]["source"] == str(csv_file)


def test_csv_every_bad_row_kind_is_a_reject_naming_file_record_field(tmp_path):
    png(tmp_path / "ok.png", color=1)
    png(tmp_path / "ok2.png", color=2)
    png(tmp_path / "big.png", size=(300, 300), color=3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "outside.png").write_bytes(b"")
    root = tmp_path / "ds"
    root.mkdir()
    png(root / "in.png", color=4)
    png(root / "in2.png", color=5)
    png(root / "big.png", size=(300, 300), color=6)
    (root / "broken.png").write_bytes(b"\x89PNG garbage")
    abs_path = str(root / "in.png")
    csv_file = root / "labels.csv"
    csv_file.write_text(
        "image,label\n"
        "in.png,a\n"  # line 2: good
        ",a\n"  # 3 empty image
        "in2.png,\n"  # 4 empty label
        "in2.png,zzz\n"  # 5 unknown label
        f"{abs_path},a\n"  # 6 absolute
        "../outside.png,a\n"  # 7 escapes the root
        "missing.png,b\n"  # 8 missing
        "broken.png,b\n"  # 9 unreadable
        "big.png,b\n"  # 10 over the pixel limit
        "in.png,b\n"  # 11 same image again, other label
        "in2.png,x,y\n"  # 12 unquoted comma
        "in2.png,old\n"  # 13 dropped
        "in2.png,B\n"  # 14 good (alias)
    )
    ds = {
        "format": "csv",
        "annotations": str(csv_file),
        "classes": ["a", "b"],
        "aliases": {"B": "b"},
        "drop": ["old"],
    }
    res = accounted(read_classify(ds, rules(tmp_path, max_image_pixels=50_000)), 13)
    assert [(r["record"], r["label"]) for r in res.records] == [("line 2", "a"), ("line 14", "b")]
    src = str(csv_file)
    assert {x["file"] for x in res.rejects} == {src}
    got = {x["record"]: (x["field"], x["reason"]) for x in res.rejects}
    assert got["line 3"] == ("image", "empty image path")
    assert got["line 4"] == ("label", "empty label")
    assert got["line 5"] == ("label", "unknown label 'zzz' (classes: a, b)")
    assert got["line 6"] == ("image", f"absolute image path {abs_path!r} is not allowed")
    assert got["line 7"][0] == "image" and "escapes the dataset root" in got["line 7"][1]
    assert got["line 8"] == ("image", f"image file {root / 'missing.png'} does not exist")
    assert got["line 9"][0] == "image" and got["line 9"][1].startswith("unreadable image")
    assert got["line 10"][0] == "image" and "pixel limit 50000" in got["line 10"][1]
    assert got["line 11"] == ("image", "image already listed at line 2 with label 'a'")
    assert got["line 12"][0] == "" and "3 fields but the header has 2" in got["line 12"][1]
    assert got["line 13"] == ("label", "label 'old' is in drop")
    assert len(got) == 11


def test_csv_bom_crlf_and_trailing_empty_fields_are_accepted(tmp_path):
    png(tmp_path / "a.png")
    f = tmp_path / "l.csv"
    f.write_bytes(b"\xef\xbb\xbfimage,label\r\na.png,x,,\r\n")
    ds = {"format": "csv", "annotations": str(f)}
    assert classes_of(ds) == ["x"]
    res = accounted(read_classify(ds, rules(tmp_path)), 1)
    assert res.records[0]["label"] == "x" and res.records[0]["record"] == "line 2"


def test_csv_missing_column_names_file_column_and_header(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("path,class\na.png,x\n")
    ds = {"format": "csv", "annotations": str(f)}
    for call in (lambda: classes_of(ds), lambda: read_classify(ds, rules(tmp_path))):
        with pytest.raises(InputError) as e:
            call()
        msg = str(e.value)
        assert msg.startswith(f"{f}: no column 'image' (the image), 'label' (the label);")
        assert "the header has 'path', 'class'" in msg
    with pytest.raises(InputError, match=r"no column 'image' \(the image\);"):
        classes_of(dict(ds, columns={"label": "class"}))
    f.write_text("path,class,class\na.png,x,y\n")
    with pytest.raises(InputError, match="column 'class' appears 2 times"):
        classes_of(dict(ds, columns={"image": "path", "label": "class"}))
    f.write_text("path,class\na.png,x\n")
    with pytest.raises(InputError, match=r"no column 'sheet_set' \(the group\)"):
        read_classify(
            dict(ds, columns={"image": "path", "label": "class"}, group_key="sheet_set"),
            rules(tmp_path),
        )


def test_csv_not_utf8_and_empty_are_input_errors(tmp_path):
    f = tmp_path / "l.csv"
    f.write_bytes("image,label\na.png,Zeichnungsk\u00f6pfe\n".encode("latin-1"))
    with pytest.raises(InputError) as e:
        read_classify({"format": "csv", "annotations": str(f)}, rules(tmp_path))
    assert str(f) in str(e.value) and "not UTF-8" in str(e.value) and "byte 29" in str(e.value)
    f.write_bytes(b"\xef\xbb\xbf" + "image,label\na.png,\u00e9".encode() + b"\xff\n")
    with pytest.raises(InputError, match="byte 23"):  # offsets count the BOM
        classes_of({"format": "csv", "annotations": str(f)})
    f.write_text("")
    with pytest.raises(InputError, match="no header row"):
        classes_of({"format": "csv", "annotations": str(f)})


def test_classes_of_csv_aliases_drop_and_given_list(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("image,label\na,Arch\nb, arch \nc,\nd,old\ne,mech\n")
    assert classes_of({"format": "csv", "annotations": str(f)}) == ["Arch", "arch", "mech", "old"]
    ds = {"annotations": str(f), "aliases": {"Arch": "arch"}, "drop": ["old"]}
    assert classes_of(ds) == ["arch", "mech"]
    assert classes_of(dict(ds, classes=["z", "y"])) == ["z", "y"]


# ---------------------------------------------------------------------------- conversion
def test_prompt_and_swift_row():
    prompt = default_prompt(["a", "b", "c"])
    assert prompt == "Classify this engineering drawing. Answer with exactly one of: a, b, c."
    row = swift_row({"image": "x/y.png", "label": "b", "boxes": []}, prompt)
    assert row == {
        "messages": [
            {"role": "user", "content": "<image>" + prompt},
            {"role": "assistant", "content": "b"},
        ],
        "images": ["x/y.png"],
    }


# ------------------------------------------------------------------------------- parsing
CLS = ["landscape", "portrait", "general arrangement", "GA-detail"]


@pytest.mark.parametrize(
    "text,want",
    [
        ("portrait", "portrait"),
        ("  Portrait \n", "portrait"),
        ("PORTRAIT.", "portrait"),
        ("'portrait'", "portrait"),
        ('"landscape".', "landscape"),
        ("```\nportrait\n```", "portrait"),
        ("```text\nlandscape\n```", "landscape"),
        ("```portrait```", "portrait"),
        ('```json\n{"label": "portrait"}\n```', "portrait"),
        ('{"class": "Landscape"}', "landscape"),
        ('["portrait"]', "portrait"),
        ("Label: portrait", "portrait"),
        ("answer = landscape.", "landscape"),
        ("The sheet is in portrait orientation.", "portrait"),
        ("general arrangement", "general arrangement"),
        ("This is a General Arrangement drawing", "general arrangement"),
        ("ga-detail", "GA-detail"),
        # none, or more than one class named
        (None, None),
        ("", None),
        ("   ", None),
        ("square", None),
        ("portraits", None),
        ("portrait or landscape", None),
        ('{"label": "square"}', None),
        ('{"label": 3}', None),
        ("null", None),
        ("GA-detailed", None),
    ],
)
def test_parse_class(text, want):
    assert parse_class(text, CLS) == want


def test_parse_class_prefers_an_exact_case_match():
    assert parse_class("A", ["a", "A"]) == "A"
    assert parse_class("a", ["a", "A"]) == "a"
    assert parse_class("the a", ["x", "y"]) is None
    assert parse_class("portrait", []) is None


# ------------------------------------------------------------------------------- metrics
TRUTH = ["a", "a", "a", "b", "b", "b", "c", "c"]
PRED = ["a", "a", "b", "b", None, None, "c", "a"]


def test_metrics_against_hand_computed_numbers():
    m = classification_metrics(TRUTH, PRED, ["a", "b", "c"])
    # right: 0, 1, 3, 6 -> 4 of 8
    assert m["n"] == 8 and m["accuracy"] == 0.5
    assert m["n_invalid"] == 2 and m["invalid_rate"] == 0.25
    # a: predicted at 0,1,7 (2 right) of 3 true; b: predicted at 2,3 (1 right) of 3; c: 6 of 2
    assert m["per_class"] == {
        "a": {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3},
        "b": {"precision": 0.5, "recall": 0.3333, "f1": 0.4, "support": 3},
        "c": {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2},
    }
    assert m["macro_f1"] == round((2 / 3 + 0.4 + 2 / 3) / 3, 4) == 0.5778
    assert m["confusion"] == {
        "labels": ["a", "b", "c", "(invalid)"],
        "matrix": [[2, 1, 0, 0], [0, 1, 0, 2], [1, 0, 1, 0]],
    }


def test_metrics_edge_cases():
    m = classification_metrics(["a", "b"], [None, "zzz"], ["a", "b", "c"])
    assert (m["accuracy"], m["macro_f1"], m["n_invalid"], m["invalid_rate"]) == (0.0, 0.0, 2, 1.0)
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["confusion"]["matrix"] == [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    empty = classification_metrics([], [], ["a", "b"])
    assert empty["n"] == 0 and empty["accuracy"] is None
    assert empty["confusion"]["matrix"] == [[0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="not in the classes"):
        classification_metrics(["q"], ["q"], ["a"])
    with pytest.raises(ValueError, match="2 truth labels but 1"):
        classification_metrics(["a", "a"], ["a"], ["a"])


def test_score_classification_pairs_rows_by_path_then_file_name(tmp_path):
    records = [
        {"image": "data/x/one.png", "label": "a"},
        {"image": "data/x/two.png", "label": "b"},
        {"image": "data/x/three.png", "label": "a"},
        {"image": "data/x/four.png", "label": "b"},
    ]
    rows = [
        {"images": [{"path": "data/x/two.png"}], "response": "b"},
        {"images": ["/elsewhere/one.png"], "response": "```\nA\n```"},  # by unique file name
        {"images": ["data/x/four.png"], "response": "I cannot tell"},
        # three.png has no row
    ]
    m, details = score_classification(rows, records, ["a", "b"])
    assert [(d["image"], d["predicted"], d["parsed"], d["matched"]) for d in details] == [
        ("data/x/one.png", "a", True, True),
        ("data/x/two.png", "b", True, True),
        ("data/x/three.png", None, False, False),
        ("data/x/four.png", None, False, True),
    ]
    assert details[1] == {
        "image": "data/x/two.png",
        "label": "b",
        "predicted": "b",
        "parsed": True,
        "matched": True,
        "response": "b",
    }
    assert details[2]["response"] is None
    assert (m["n"], m["accuracy"], m["n_invalid"]) == (4, 0.5, 2)
    assert m["confusion"]["matrix"] == [[1, 0, 1], [0, 1, 1]]


def test_confusion_chart_writes_the_same_png_each_time(tmp_path):
    m = classification_metrics(TRUTH, PRED, ["a", "b", "c"])
    confusion_chart(m, tmp_path / "one.png")
    confusion_chart(m, tmp_path / "two.png")
    data = (tmp_path / "one.png").read_bytes()
    assert data.startswith(b"\x89PNG") and data == (tmp_path / "two.png").read_bytes()
    with Image.open(tmp_path / "one.png") as im:
        assert im.width > 200 and im.height > 200
    assert b"Software" not in data and b"matplotlib" not in data.lower()


# ----------------------------------------------------------------------------- synthetic
def test_synth_classify_is_deterministic_and_reads_back_cleanly(tmp_path):
    def make(where: Path):
        synth_classify(10, 7, 320, where / "images", where / "labels.csv")
        return {
            p.relative_to(where).as_posix(): p.read_bytes() for p in where.rglob("*") if p.is_file()
        }

    one, two = make(tmp_path / "one"), make(tmp_path / "two")
    assert one == two and len(one) == 11
    lines = one["labels.csv"].decode().splitlines()
    assert lines[0] == "image,label" and lines[1].startswith("images/sheet_0007_00000.png,")
    ds = {"format": "csv", "annotations": str(tmp_path / "one" / "labels.csv")}
    assert classes_of(ds) == ["landscape", "portrait"]
    res = accounted(read_classify(ds, rules(tmp_path)), 10)
    assert res.rejects == []
    labels = [r["label"] for r in res.records]
    assert labels.count("landscape") == labels.count("portrait") == 5
    for r in res.records:  # the label is what the picture shows
        w, h = r["width"], r["height"]
        assert max(w, h) == 320
        assert r["label"] == ("portrait" if h > w else "landscape")
    # a longer run keeps the first sheets as they were
    synth_classify(12, 7, 320, tmp_path / "three" / "images", tmp_path / "three" / "labels.csv")
    more = (tmp_path / "three" / "labels.csv").read_text().splitlines()
    assert more[:11] == lines
    assert (tmp_path / "three" / "images" / "sheet_0007_00009.png").read_bytes() == one[
        "images/sheet_0007_00009.png"
    ]


def test_synth_classify_both_classes_for_every_seed_from_eight_sheets(tmp_path):
    for seed in range(50):
        assert {synth_label(seed, i) for i in range(8)} == {"landscape", "portrait"}
    with pytest.raises(ValueError, match="inside the CSV's folder"):
        synth_classify(2, 0, 320, tmp_path / "imgs", tmp_path / "sub" / "labels.csv")
