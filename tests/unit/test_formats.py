"""Every input format, written by hand after its spec, and the broken inputs each must survive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from drawtune.cli import main
from drawtune.coords import ResizeSpec, from_model, to_model
from drawtune.data.coco import read_coco
from drawtune.data.formats import read_labelme, read_voc
from drawtune.data.images import inspect
from drawtune.data.readers import detect_format, read_dataset
from drawtune.data.records import Rules
from drawtune.data.swift import read_swift
from drawtune.data.yolo import read_yolo
from drawtune.errors import InputError

CLASSES = ("view", "note", "title_block")


def rules(tmp_path, **kw) -> Rules:
    return Rules(classes=CLASSES, normalised_dir=tmp_path / "norm", **kw)


def png(path: Path, size=(200, 100), mode="RGB", color=255, fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)
    return path


def only_reject(res):
    assert res.records == [], res.records
    assert len(res.rejects) == 1, res.rejects
    return res.rejects[0]


# ------------------------------------------------------------------------------ LabelMe
LABELME = """{
  "version": "5.4.1",
  "flags": {},
  "shapes": [
    {"label": "view", "points": [[120.0, 80.0], [20.0, 10.0]], "group_id": null,
     "shape_type": "rectangle", "flags": {}},
    {"label": "NOTE", "points": [[5, 5], [15, 25]], "shape_type": "rectangle", "flags": {}}
  ],
  "imagePath": "sheet.png",
  "imageData": null,
  "imageHeight": 100,
  "imageWidth": 200
}"""


def test_labelme_rectangles_any_corner_order_and_aliases(tmp_path):
    png(tmp_path / "sheet.png")
    (tmp_path / "sheet.json").write_text(LABELME)
    res = read_labelme(tmp_path / "sheet.json", rules(tmp_path, aliases={"NOTE": "note"}))
    assert res.rejects == []
    (r,) = res.records
    assert r["boxes"] == [
        {"label": "view", "bbox": [20.0, 10.0, 120.0, 80.0]},
        {"label": "note", "bbox": [5.0, 5.0, 15.0, 25.0]},
    ]
    assert (r["width"], r["height"]) == (200, 100)


def test_labelme_polygon_is_reported_not_guessed(tmp_path):
    png(tmp_path / "sheet.png")
    doc = json.loads(LABELME)
    doc["shapes"].append(
        {"label": "view", "points": [[1, 1], [9, 1], [5, 9]], "shape_type": "polygon"}
    )
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "b.json").write_text(LABELME)  # a good file beside it is kept
    res = read_labelme(tmp_path, rules(tmp_path, aliases={"NOTE": "note"}))
    assert len(res.records) == 1 and len(res.rejects) == 1
    r = res.rejects[0]
    assert r["file"].endswith("a.json") and r["field"] == "shapes[2].shape_type"
    assert "polygon" in r["reason"]


def test_labelme_declared_size_and_encoding(tmp_path):
    png(tmp_path / "sheet.png")
    (tmp_path / "a.json").write_text(LABELME.replace('"imageWidth": 200', '"imageWidth": 300'))
    (tmp_path / "b.json").write_bytes(LABELME.replace("view", "vue\xe9").encode("latin-1"))
    res = read_labelme(tmp_path, rules(tmp_path))
    by_file = {Path(r["file"]).name: r for r in res.rejects}
    assert by_file["a.json"]["field"] == "imageWidth"
    assert "not UTF-8" in by_file["b.json"]["reason"]
    assert res.n_read == 2


# --------------------------------------------------------------------------------- YOLO
def yolo_dataset(tmp_path) -> Path:
    root = tmp_path / "yolo"
    png(root / "images" / "a.png", (200, 100))
    png(root / "images" / "sub" / "b.png", (200, 100))  # no label file: a negative sample
    png(root / "images" / "c.png", (200, 100))
    png(root / "images" / "d.png", (200, 100))
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n2 0.1 0.1 0.2 0.2\n\n")
    (root / "labels" / "c.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "d.txt").write_text("0 0.5 0.5 0.1\n")
    (root / "data.yaml").write_text("path: .\nnames:\n  0: view\n  1: note\n  2: title_block\n")
    return root


def test_yolo_centre_boxes_negatives_and_bad_lines(tmp_path):
    root = yolo_dataset(tmp_path)
    assert detect_format(root) == "yolo"
    res = read_yolo(root / "data.yaml", rules(tmp_path))
    recs = {r["record"]: r for r in res.records}
    assert recs["a.png"]["boxes"] == [
        {"label": "view", "bbox": [80.0, 30.0, 120.0, 70.0]},
        {"label": "title_block", "bbox": [0.0, 0.0, 40.0, 20.0]},
    ]
    assert recs["sub/b.png"]["boxes"] == []
    rej = {r["record"]: r for r in res.rejects}
    assert rej["c.png"]["field"] == "line 1.class" and "0..2" in rej["c.png"]["reason"]
    assert rej["d.png"]["field"] == "line 1"
    assert res.n_read == 4


def test_yolo_classes_txt(tmp_path):
    root = yolo_dataset(tmp_path)
    (root / "data.yaml").unlink()
    (root / "classes.txt").write_text("view\nnote\ntitle_block\n")
    res = read_yolo(root, rules(tmp_path))
    assert len(res.records) == 2 and len(res.rejects) == 2


# ---------------------------------------------------------------------------------- VOC
VOC = """<annotation>
  <folder>drawings</folder>
  <filename>sheet.png</filename>
  <size><width>200</width><height>100</height><depth>3</depth></size>
  <object>
    <name>view</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>20</xmin><ymin>10</ymin><xmax>120</xmax><ymax>80</ymax></bndbox>
  </object>
</annotation>
"""


def test_voc_boxes_and_broken_files(tmp_path):
    png(tmp_path / "sheet.png")
    (tmp_path / "a.xml").write_text(VOC)
    (tmp_path / "b.xml").write_text(VOC.replace("</object>", "</objekt>"))
    (tmp_path / "c.xml").write_text(VOC.replace("<xmax>120", "<xmax>wide"))
    (tmp_path / "d.xml").write_text(VOC.replace("<xmin>20", "<xmin>150"))
    assert detect_format(tmp_path) == "voc"
    res = read_voc(tmp_path, rules(tmp_path))
    assert [r["boxes"] for r in res.records] == [
        [{"label": "view", "bbox": [20.0, 10.0, 120.0, 80.0]}]
    ]
    rej = {Path(r["file"]).name: r for r in res.rejects}
    assert "malformed XML at line 8 column" in rej["b.xml"]["reason"]
    assert rej["c.xml"]["field"] == "object[0].bndbox.xmax"
    assert rej["d.xml"]["field"] == "object[0].bbox" and "inverted" in rej["d.xml"]["reason"]


def test_voc_path_escaping_the_root(tmp_path):
    png(tmp_path / "outside.png")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.xml").write_text(VOC.replace("sheet.png", "../outside.png"))
    r = only_reject(read_voc(tmp_path / "ds", rules(tmp_path)))
    assert r["field"] == "filename" and "escapes" in r["reason"]


# ------------------------------------------------------------------- ms-swift objects form
def test_swift_objects_form_real_and_norm1000(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    rows = [
        {
            "messages": [{"role": "user", "content": "<image>Find <ref-object>"}],
            "images": ["a.png"],
            "objects": {"ref": ["view"], "bbox": [[20, 10, 120, 80]], "bbox_type": "real"},
        },
        {
            "images": ["a.png"],
            "objects": {"ref": ["note"], "bbox": [[100, 100, 600, 800]], "bbox_type": "norm1000"},
        },
        {
            "images": ["a.png"],
            "objects": {"ref": ["note"], "bbox": [[0, 0, 1200, 10]], "bbox_type": "norm1000"},
        },
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = read_swift(path, rules(tmp_path), "qwen3_vl")
    assert [r["boxes"] for r in res.records] == [
        [{"label": "view", "bbox": [20.0, 10.0, 120.0, 80.0]}],
        [{"label": "note", "bbox": [20.0, 10.0, 120.0, 80.0]}],
    ]
    (r,) = res.rejects
    assert r["record"] == "line 3" and r["field"] == "objects.bbox[0]"


# ------------------------------------------------------------------------------ images
def test_tiff_page_two_is_its_own_image(tmp_path):
    p1 = Image.new("RGB", (200, 100), "white")
    p2 = Image.new("RGB", (300, 150), "black")
    p1.save(tmp_path / "scan.tif", save_all=True, append_images=[p2])
    coco = {
        "images": [{"id": 1, "file_name": "scan.tif#2"}, {"id": 2, "file_name": "scan.tif#3"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50]}],
        "categories": [{"id": 1, "name": "view"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    res = read_coco(tmp_path / "ann.json", rules(tmp_path))
    (r,) = res.records
    assert (r["width"], r["height"]) == (300, 150)
    assert Path(r["image"]).parent == tmp_path / "norm" and Path(r["image"]).is_file()
    assert Image.open(r["image"]).getpixel((5, 5)) == (0, 0, 0)
    (j,) = res.rejects
    assert j["record"].startswith("images[1]") and "2 page(s)" in j["reason"]


def test_pdf_pages_rasterised_and_point_boxes_converted(tmp_path):
    pages = [Image.new("RGB", (200, 100), "white"), Image.new("RGB", (100, 100), "white")]
    pages[0].save(tmp_path / "sheet.pdf", save_all=True, append_images=pages[1:], resolution=72)
    coco = {
        "images": [{"id": 1, "file_name": "sheet.pdf"}, {"id": 2, "file_name": "sheet.pdf#2"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 20]}],
        "categories": [{"id": 1, "name": "view"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    res = read_coco(tmp_path / "ann.json", rules(tmp_path, pdf_dpi=144, box_units="pdf_points"))
    assert res.rejects == []
    a, b = res.records
    assert (a["width"], a["height"]) == (400, 200) and (b["width"], b["height"]) == (200, 200)
    assert a["boxes"] == [{"label": "view", "bbox": [20.0, 20.0, 100.0, 60.0]}]
    assert a["sha256"] != b["sha256"]


def test_exif_rotation_and_modes_are_normalised(tmp_path):
    im = Image.new("RGB", (200, 100), "white")
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    png(tmp_path / "cmyk.jpg", (50, 40), mode="CMYK", color=(0, 0, 0, 0), fmt="JPEG")
    png(tmp_path / "plain.png", (50, 40))
    rot = inspect(tmp_path / "rot.jpg", tmp_path / "norm")
    assert (rot.width, rot.height, rot.normalised) == (100, 200, True)
    assert Image.open(rot.path).size == (100, 200)
    cmyk = inspect(tmp_path / "cmyk.jpg", tmp_path / "norm")
    assert cmyk.normalised and Image.open(cmyk.path).mode == "RGB"
    plain = inspect(tmp_path / "plain.png", tmp_path / "norm")
    assert not plain.normalised and plain.path == str(tmp_path / "plain.png")


def test_truncated_image_is_rejected(tmp_path):
    data = png(tmp_path / "a.png", (300, 300), color=(10, 200, 30)).read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])
    coco = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [], "categories": []}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    r = only_reject(read_coco(tmp_path / "ann.json", rules(tmp_path)))
    assert r["field"] == "file_name" and "a.png" in r["reason"]


def test_facts_are_memoised_by_file_identity(tmp_path, monkeypatch):
    import drawtune.data.images as images

    png(tmp_path / "a.png")
    first = inspect(tmp_path / "a.png", None, cache_dir=tmp_path / "cache")

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "_open_raster", boom)
    assert inspect(tmp_path / "a.png", None, cache_dir=tmp_path / "cache") == first
    png(tmp_path / "a.png", (20, 10))  # edited in place: new size and mtime -> decoded again
    with pytest.raises(AssertionError, match="decoded again"):
        inspect(tmp_path / "a.png", None, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------- detection and CLI
def test_detect_format(tmp_path):
    png(tmp_path / "sheet.png")
    (tmp_path / "l.json").write_text(LABELME)
    (tmp_path / "c.json").write_text('{"images": [], "annotations": []}')
    (tmp_path / "s.jsonl").write_text("")
    (tmp_path / "v.xml").write_text(VOC)
    assert detect_format(tmp_path / "l.json") == "labelme"
    assert detect_format(tmp_path / "c.json") == "coco"
    assert detect_format(tmp_path / "s.jsonl") == "swift"
    assert detect_format(tmp_path / "v.xml") == "voc"
    with pytest.raises(InputError, match="cannot tell"):
        detect_format(tmp_path)  # .json and .xml side by side


def test_cli_on_error_fail_names_every_problem_and_writes_nothing(tmp_path, capsys):
    png(tmp_path / "sheet.png")
    (tmp_path / "a.xml").write_text(VOC)
    (tmp_path / "b.xml").write_text(VOC.replace("view", "gear"))
    out = tmp_path / "out.jsonl"
    args = ["convert", "--input", str(tmp_path), "--family", "qwen3_vl", "--out", str(out)]
    args += ["--classes", "view,note", "--rejects", str(tmp_path / "rej.jsonl")]
    args += ["--max-rejected-fraction", "0.5"]  # one of two rejected: under this limit
    assert main([*args, "--on-error", "fail"]) == 1
    err = capsys.readouterr().err
    assert "b.xml annotation [object[0].label]: unknown label 'gear'" in err
    assert "Traceback" not in err and not out.exists()
    assert main(args) == 0
    assert len(out.read_text().splitlines()) == 1
    assert json.loads((tmp_path / "rej.jsonl").read_text())["field"] == "object[0].label"


def test_read_dataset_drop_labels(tmp_path):
    png(tmp_path / "sheet.png")
    (tmp_path / "a.json").write_text(LABELME)
    ds = {"format": "auto", "annotations": str(tmp_path / "a.json")}
    res = read_dataset(ds, rules(tmp_path, drop=("NOTE",)), ResizeSpec())
    assert [b["label"] for b in res.records[0]["boxes"]] == ["view"]


# ---------------------------------------------------------------- property: nothing lost
def _writers(tmp_path, w, h, boxes):
    """The same boxes written in every format; returns (format, annotation path) pairs."""
    png(tmp_path / "img.png", (w, h))
    out = []
    coco = {
        "images": [{"id": 1, "file_name": "img.png", "width": w, "height": h}],
        "annotations": [
            {"id": k, "image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1]}
            for k, (x1, y1, x2, y2) in enumerate(boxes)
        ],
        "categories": [{"id": 1, "name": "view"}],
    }
    (tmp_path / "c.json").write_text(json.dumps(coco))
    out.append(("coco", tmp_path / "c.json"))
    shapes = [
        {"label": "view", "points": [[b[0], b[1]], [b[2], b[3]]], "shape_type": "rectangle"}
        for b in boxes
    ]
    (tmp_path / "l.json").write_text(json.dumps({"imagePath": "img.png", "shapes": shapes}))
    out.append(("labelme", tmp_path / "l.json"))
    objs = "".join(
        f"<object><name>view</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for b in boxes
    )
    (tmp_path / "v.xml").write_text(f"<annotation><filename>img.png</filename>{objs}</annotation>")
    out.append(("voc", tmp_path / "v.xml"))
    answer = json.dumps([{"bbox_2d": list(b), "label": "view"} for b in boxes])
    row = {"messages": [{"role": "assistant", "content": answer}], "images": ["img.png"]}
    (tmp_path / "s.jsonl").write_text(json.dumps(row) + "\n")
    out.append(("swift", tmp_path / "s.jsonl"))
    (tmp_path / "y" / "images").mkdir(parents=True)
    (tmp_path / "y" / "labels").mkdir()
    png(tmp_path / "y" / "images" / "img.png", (w, h))
    (tmp_path / "y" / "classes.txt").write_text("view\n")
    (tmp_path / "y" / "labels" / "img.txt").write_text(
        "".join(
            f"0 {(b[0] + b[2]) / 2 / w!r} {(b[1] + b[3]) / 2 / h!r} {(b[2] - b[0]) / w!r} "
            f"{(b[3] - b[1]) / h!r}\n"
            for b in boxes
        )
    )
    out.append(("yolo", tmp_path / "y"))
    return out


@st.composite
def image_and_boxes(draw):
    w = draw(st.integers(32, 1200))
    h = draw(st.integers(32, 1200))
    n = draw(st.integers(0, 4))
    boxes = []
    for _ in range(n):
        x1 = draw(st.integers(0, w - 2))
        y1 = draw(st.integers(0, h - 2))
        boxes.append((x1, y1, draw(st.integers(x1 + 1, w)), draw(st.integers(y1 + 1, h))))
    return w, h, boxes


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=image_and_boxes())
def test_valid_boxes_survive_every_reader_and_both_families(tmp_path_factory, case):
    w, h, boxes = case
    tmp = tmp_path_factory.mktemp("prop")
    expect = [{"label": "view", "bbox": [float(v) for v in b]} for b in boxes]
    for fmt, path in _writers(tmp, w, h, boxes):
        ds = {"format": fmt, "annotations": str(path), "coords": "pixels"}
        res = read_dataset(ds, Rules(classes=("view",)), ResizeSpec())
        assert res.rejects == [], (fmt, res.rejects)
        got = res.records[0]["boxes"]
        assert [g["label"] for g in got] == [e["label"] for e in expect], fmt
        for g, e in zip(got, expect, strict=True):  # YOLO's normalised floats round-trip to 1e-3
            assert g["bbox"] == pytest.approx(e["bbox"], abs=1e-3), fmt
    for family in ("qwen3_vl", "qwen2_5_vl"):
        spec = ResizeSpec(3136, 1003520)
        for b in boxes:
            back = from_model(to_model(b, family, w, h, spec), family, w, h, spec)
            unit = w / 1000 if family == "qwen3_vl" else 1.0
            tol = max(unit, w / 1000, h / 1000) + 1.0
            assert all(abs(a - c) <= tol for a, c in zip(back, b, strict=True)), (family, b, back)


def test_coco_orphan_annotations_are_reported(tmp_path):
    png(tmp_path / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 2, "image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5]},
            "junk",
        ],
        "categories": [{"id": 1, "name": "view"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    res = read_coco(tmp_path / "ann.json", rules(tmp_path))
    assert len(res.records) == 1
    assert sorted((r["record"], r["field"]) for r in res.rejects) == [
        ("annotations[1]", "image_id"),
        ("annotations[2]", ""),  # not an object: the whole entry is the bad field
    ]
