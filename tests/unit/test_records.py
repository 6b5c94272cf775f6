"""Reading COCO and ms-swift annotations into records, with named rejects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from drawtune.coords import ResizeSpec
from drawtune.data.coco import read_coco
from drawtune.data.records import Rules, display_path
from drawtune.data.swift import read_swift
from drawtune.errors import InputError

RULES = Rules(classes=("view", "note"))
CATS = [{"id": 1, "name": "view"}, {"id": 2, "name": "note"}, {"id": 3, "name": "gear"}]


def png(path: Path, size=(200, 100), colour=255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, colour).save(path)
    return path


def write_coco(path: Path, images: list[dict], anns: list[dict], **dump) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    coco = {"images": images, "annotations": anns, "categories": CATS}
    path.write_text(json.dumps(coco, **dump))
    return path


def ann(image_id: int, bbox, category_id=1) -> dict:
    return {"id": 0, "image_id": image_id, "category_id": category_id, "bbox": bbox}


def only_reject(res) -> dict:
    assert res.records == []
    assert len(res.rejects) == 1
    return res.rejects[0]


# ---------------------------------------------------------------------------------- COCO


def test_read_coco_valid(tmp_path):
    img = png(tmp_path / "ds" / "images" / "a.png", (200, 100))
    path = write_coco(
        tmp_path / "ds" / "ann.json",
        [{"id": 5, "file_name": "images/a.png", "width": 200, "height": 100, "set": "S1"}],
        [ann(5, [10, 20, 30, 40]), ann(5, [0.5, 1.25, 100, 50.5], 2)],
    )
    res = read_coco(path, RULES, group_key="set")
    assert res.rejects == []
    assert res.n_read == 1
    (r,) = res.records
    assert r["source"] == display_path(path)  # relative to the working dir, else absolute
    assert r["record"] == "images[0] (id 5)"
    assert r["image"] == display_path(img)
    assert r["sha256"] == hashlib.sha256(img.read_bytes()).hexdigest()
    assert (r["width"], r["height"]) == (200, 100)
    # xywh -> xyxy: [10, 20, 10+30, 20+40]; [0.5, 1.25, 0.5+100, 1.25+50.5]
    assert r["boxes"] == [
        {"label": "view", "bbox": [10.0, 20.0, 40.0, 60.0]},
        {"label": "note", "bbox": [0.5, 1.25, 100.5, 51.75]},
    ]
    assert r["group"] == "S1"


def test_read_coco_images_root(tmp_path):
    png(tmp_path / "pictures" / "a.png")
    path = write_coco(tmp_path / "ann" / "ann.json", [{"id": 1, "file_name": "a.png"}], [])
    res = read_coco(path, RULES, images_root=tmp_path / "pictures")
    assert len(res.records) == 1 and res.records[0]["boxes"] == []


def test_read_coco_aliases(tmp_path):
    png(tmp_path / "a.png")
    path = write_coco(
        tmp_path / "ann.json", [{"id": 1, "file_name": "a.png"}], [ann(1, [1, 1, 5, 5], 3)]
    )
    res = read_coco(path, Rules(classes=("view", "note"), aliases={"gear": "view"}))
    assert res.records[0]["boxes"] == [{"label": "view", "bbox": [1.0, 1.0, 6.0, 6.0]}]


def _reject_case(tmp_path, image: dict, anns: list[dict]):
    root = tmp_path / "ds"
    png(root / "a.png", (200, 100))
    path = write_coco(root / "ann.json", [{"id": 1, **image}], anns, allow_nan=True)
    res = read_coco(path, RULES)
    assert len(res.records) + len(res.rejects) == res.n_read == 1
    r = only_reject(res)
    assert r["file"] == display_path(path)
    assert r["record"] == "images[0] (id 1)"
    return r


def test_reject_missing_image(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "missing.png"}, [])
    assert r["field"] == "file_name"
    assert "does not exist" in r["reason"] and "missing.png" in r["reason"]


def test_reject_path_escaping_root(tmp_path):
    png(tmp_path / "x.png")  # exists, but outside the dataset root
    r = _reject_case(tmp_path, {"file_name": "../x.png"}, [])
    assert r["field"] == "file_name"
    assert "escapes" in r["reason"] and "../x.png" in r["reason"]


def test_reject_absolute_path(tmp_path):
    absolute = png(tmp_path / "ds" / "b.png")  # exists, inside the root even
    r = _reject_case(tmp_path, {"file_name": str(absolute)}, [])
    assert r["field"] == "file_name"
    assert "absolute" in r["reason"]


def test_reject_missing_file_name(tmp_path):
    r = _reject_case(tmp_path, {}, [])
    assert r["field"] == "file_name"
    assert "missing image path" in r["reason"]


def test_reject_inverted_box(tmp_path):
    # xywh [50, 20, -10, 30] -> xyxy [50, 20, 40, 50]
    r = _reject_case(
        tmp_path, {"file_name": "a.png"}, [ann(1, [1, 1, 5, 5]), ann(1, [50, 20, -10, 30])]
    )
    assert r["field"] == "annotations[1].bbox"
    assert "inverted" in r["reason"]


def test_reject_zero_area_box(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [50, 20, 0, 30])])
    assert r["field"] == "annotations[0].bbox"
    assert "zero area" in r["reason"]


def test_reject_nan_box(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [float("nan"), 20, 10, 30])])
    assert r["field"] == "annotations[0].bbox"
    assert "non-finite" in r["reason"]


def test_reject_non_number_box(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [1, "2", 10, 30])])
    assert r["field"] == "annotations[0].bbox[1]" and "got a string '2'" in r["reason"]


def test_reject_short_box(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [1, 2, 10])])
    assert r["field"] == "annotations[0].bbox"


def test_reject_unknown_label(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [1, 2, 10, 10], category_id=3)])
    assert r["field"] == "annotations[0].label"
    assert "'gear'" in r["reason"]


def test_reject_unknown_category_id(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [1, 2, 10, 10], category_id=99)])
    assert r["field"] == "annotations[0].category_id"
    assert "99" in r["reason"]


def test_reject_box_beyond_clip_tolerance(tmp_path):
    # 200x100 image, tolerance 2: x2 = 150 + 60 = 210 > 202
    r = _reject_case(tmp_path, {"file_name": "a.png"}, [ann(1, [150, 10, 60, 20])])
    assert r["field"] == "annotations[0].bbox"
    assert "outside the 200x100 image" in r["reason"]


def test_box_within_clip_tolerance_is_clipped(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    # x2 = 150 + 51.5 = 201.5 <= 202 -> 200; y1 = -1.5 >= -2 -> 0; y2 = -1.5 + 101 = 99.5
    path = write_coco(
        tmp_path / "ann.json", [{"id": 1, "file_name": "a.png"}], [ann(1, [150, -1.5, 51.5, 101])]
    )
    res = read_coco(path, RULES)
    assert res.rejects == []
    assert res.records[0]["boxes"] == [{"label": "view", "bbox": [150.0, 0.0, 200.0, 99.5]}]
    # a wider tolerance accepts what the default rejects
    path = write_coco(
        tmp_path / "ann.json", [{"id": 1, "file_name": "a.png"}], [ann(1, [150, 10, 55, 20])]
    )
    assert read_coco(path, RULES).rejects
    wide = read_coco(path, Rules(classes=RULES.classes, clip_tolerance=10))
    assert wide.records[0]["boxes"][0]["bbox"] == [150.0, 10.0, 200.0, 30.0]


def test_reject_declared_size_mismatch(tmp_path):
    r = _reject_case(tmp_path, {"file_name": "a.png", "width": 300, "height": 100}, [])
    assert r["field"] == "width"
    assert r["reason"] == "declared width 300 but the image has 200"
    r = _reject_case(tmp_path, {"file_name": "a.png", "width": 200, "height": 99}, [])
    assert r["field"] == "height"


def test_reject_image_over_pixel_limit(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    path = write_coco(tmp_path / "ann.json", [{"id": 1, "file_name": "a.png"}], [])
    r = only_reject(read_coco(path, Rules(classes=("view",), max_image_pixels=19_999)))
    assert r["field"] == "file_name"
    assert "pixel limit" in r["reason"]


def test_reject_unreadable_image(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    path = write_coco(tmp_path / "ann.json", [{"id": 1, "file_name": "a.png"}], [])
    r = only_reject(read_coco(path, RULES))
    assert r["field"] == "file_name"
    assert "unreadable" in r["reason"]


def test_bad_box_rejects_the_whole_record_and_others_survive(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "b.png", colour=0)
    images = [
        {"id": 1, "file_name": "a.png"},
        {"id": 2, "file_name": "b.png"},
        {"id": 3, "file_name": "gone.png"},
    ]
    anns = [ann(1, [1, 1, 5, 5]), ann(2, [1, 1, 5, 5]), ann(2, [1, 1, 5, 5], 99)]
    path = write_coco(tmp_path / "ann.json", images, anns)
    res = read_coco(path, RULES)
    assert [r["record"] for r in res.records] == ["images[0] (id 1)"]
    assert [(r["record"], r["field"]) for r in res.rejects] == [
        ("images[1] (id 2)", "annotations[2].category_id"),
        ("images[2] (id 3)", "file_name"),
    ]
    assert len(res.records) + len(res.rejects) == res.n_read == len(images)


def test_malformed_json_names_line_and_column(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text('{\n  "images": [\n    {"id": 1,, "file_name": "a.png"}\n  ]\n}\n')
    with pytest.raises(InputError) as e:
        read_coco(path, RULES)
    msg = str(e.value)
    assert str(path) in msg
    assert "line 3 column 14" in msg  # the second comma


def test_not_a_coco_file(tmp_path):
    path = tmp_path / "ann.json"
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a COCO file"):
        read_coco(path, RULES)


@pytest.mark.parametrize("reader", ["coco", "swift"])
def test_annotation_file_in_working_directory(tmp_path, monkeypatch, reader):
    monkeypatch.chdir(tmp_path)
    png(tmp_path / "a.png")
    if reader == "coco":
        write_coco(tmp_path / "ann.json", [{"id": 1, "file_name": "a.png"}], [ann(1, [1, 1, 5, 5])])
        res = read_coco(Path("ann.json"), RULES)
    else:
        (tmp_path / "ann.jsonl").write_text(json.dumps(swift_row("a.png", "[]")) + "\n")
        res = read_swift(Path("ann.jsonl"), RULES, "pixels")
    assert res.rejects == []
    assert len(res.records) == 1


# ---------------------------------------------------------------------------------- swift


def swift_row(image, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": "<image>Detect."},
            {"role": "assistant", "content": answer},
        ],
        "images": [image],
    }


def answer(*boxes) -> str:
    items = [{"bbox_2d": list(b), "label": label} for label, b in boxes]
    return "```json\n" + json.dumps(items) + "\n```"


def write_swift(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_read_swift_qwen3_coords(tmp_path):
    img = png(tmp_path / "a.png", (200, 100))
    path = write_swift(
        tmp_path / "d.jsonl", [swift_row("a.png", answer(("view", [100, 200, 500, 800])))]
    )
    res = read_swift(path, RULES, "qwen3_vl")
    assert res.rejects == []
    (r,) = res.records
    # x = v*200/1000, y = v*100/1000: [20, 20, 100, 80]
    assert r["boxes"] == [{"label": "view", "bbox": [20.0, 20.0, 100.0, 80.0]}]
    assert r["record"] == "line 1"
    assert r["source"] == display_path(path)
    assert r["image"] == display_path(img)
    assert (r["width"], r["height"]) == (200, 100)


def test_read_swift_pixel_coords_and_dict_image(tmp_path):
    png(tmp_path / "imgs" / "a.png", (200, 100))
    row = swift_row(
        {"path": "imgs/a.png"}, answer(("note", [10, 20, 30, 40]), ("view", [0, 0, 200, 100]))
    )
    res = read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "pixels")
    assert res.records[0]["boxes"] == [
        {"label": "note", "bbox": [10.0, 20.0, 30.0, 40.0]},
        {"label": "view", "bbox": [0.0, 0.0, 200.0, 100.0]},
    ]


def test_read_swift_qwen25_coords(tmp_path):
    png(tmp_path / "a.png", (1000, 700))
    # 1000x700 is seen as 1008x700 by Qwen2.5-VL; x = v*1000/1008, y = v.
    #   126 -> 125.0, 504 -> 500.0, 101 -> 100.198412... -> 100.198 (3 decimals)
    row = swift_row("a.png", answer(("view", [126, 70, 504, 350]), ("note", [101, 0, 1008, 700])))
    res = read_swift(
        write_swift(tmp_path / "d.jsonl", [row]), RULES, "qwen2_5_vl", spec=ResizeSpec()
    )
    assert res.rejects == []
    assert res.records[0]["boxes"] == [
        {"label": "view", "bbox": [125.0, 70.0, 500.0, 350.0]},
        {"label": "note", "bbox": [100.198, 0.0, 1000.0, 700.0]},
    ]


def test_read_swift_qwen25_respects_resize_spec(tmp_path):
    png(tmp_path / "a.png", (2000, 1500))
    # max_pixels 100_000 -> frame 364x252 (see test_coords): x = v*2000/364, y = v*1500/252
    #   [182, 126, 364, 252] -> [1000, 750, 2000, 1500]
    row = swift_row("a.png", answer(("view", [182, 126, 364, 252])))
    spec = ResizeSpec(min_pixels=3136, max_pixels=100_000)
    res = read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "qwen2_5_vl", spec=spec)
    assert res.records[0]["boxes"] == [{"label": "view", "bbox": [1000.0, 750.0, 2000.0, 1500.0]}]


def test_read_swift_rejects_by_line(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    png(tmp_path / "b.png", (200, 100), colour=0)
    lines = [
        swift_row("a.png", answer(("view", [100, 200, 500, 800]))),  # line 1: fine
        '{"messages": [, "images": ["a.png"]}',  # line 2: malformed JSON
        "",  # line 3: blank, skipped (not a record)
        swift_row("a.png", "I could not find anything."),  # line 4: unparseable answer
        swift_row("b.png", "[]"),  # line 5: a negative drawing
        swift_row("a.png", answer(("gear", [1, 1, 5, 5]))),  # line 6: unknown label
        swift_row("missing.png", "[]"),  # line 7: missing image
        {"messages": [{"role": "user", "content": "x"}], "images": ["a.png"]},  # line 8
        {"messages": [], "images": ["a.png", "b.png"]},  # line 9: two images
    ]
    path = write_swift(tmp_path / "d.jsonl", lines)
    res = read_swift(path, RULES, "qwen3_vl")
    assert [r["record"] for r in res.records] == ["line 1", "line 5"]
    assert res.records[1]["boxes"] == []
    rejects = {r["record"]: r for r in res.rejects}
    assert all(r["file"] == display_path(path) for r in res.rejects)
    assert rejects["line 2"]["reason"].startswith("malformed JSON at column 15")
    assert rejects["line 4"]["field"] == "messages[assistant].content"
    assert rejects["line 6"]["field"] == "messages[assistant].content[0].label"
    assert rejects["line 7"]["field"] == "images[0]"
    assert rejects["line 8"]["field"] == "messages"
    assert rejects["line 9"]["field"] == "images"
    assert len(res.records) + len(res.rejects) == res.n_read == 8


def test_read_swift_negative_model_box_rejected(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    # qwen3 [-100, 0, 500, 500] is out of frame; the reject names the raw values
    row = swift_row("a.png", answer(("view", [-100, 0, 500, 500])))
    r = only_reject(read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "qwen3_vl"))
    assert r["field"] == "messages[assistant].content[0].bbox"
    assert "-100" in r["reason"]


def test_read_swift_inverted_model_box_rejected(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    row = swift_row("a.png", answer(("view", [500, 500, 100, 100])))
    r = only_reject(read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "qwen3_vl"))
    assert r["field"] == "messages[assistant].content[0].bbox"
    assert "inverted" in r["reason"]


def test_read_swift_slightly_negative_model_box_never_kept_in_model_units(tmp_path):
    png(tmp_path / "a.png", (2000, 1000))
    row = swift_row("a.png", answer(("view", [-1, 0, 100, 50])))
    res = read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "qwen3_vl")
    # Rejecting the out-of-frame box or converting it ([-2, 0, 200, 50] px, clipped) are both
    # fine; storing the model numbers as pixels is not.
    assert res.rejects or res.records[0]["boxes"] == [
        {"label": "view", "bbox": [0.0, 0.0, 200.0, 50.0]}
    ]


def test_read_swift_model_box_beyond_frame_rejected(tmp_path):
    png(tmp_path / "a.png", (2000, 1000))
    # qwen3 x2 = 1100 is 200 px past the right edge, far beyond the 2 px clip tolerance
    row = swift_row("a.png", answer(("view", [0, 0, 1100, 500])))
    res = read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "qwen3_vl")
    r = only_reject(res)
    assert r["field"] == "messages[assistant].content[0].bbox"


def test_read_swift_truncated_answer_rejected(tmp_path):
    png(tmp_path / "a.png", (200, 100))
    cut = answer(("view", [1, 1, 5, 5]), ("note", [10, 10, 50, 50]))[:-20]
    row = swift_row("a.png", cut)
    r = only_reject(read_swift(write_swift(tmp_path / "d.jsonl", [row]), RULES, "pixels"))
    assert r["field"] == "messages[assistant].content"


def test_read_swift_unknown_coords(tmp_path):
    with pytest.raises(InputError, match="unknown coordinate convention"):
        read_swift(tmp_path / "d.jsonl", RULES, "qwen2_vl")


# --------------------------------------------------------------- stages.validate_dataset


def test_validate_dataset_writes_outputs_and_enforces_fraction(tmp_path):
    from drawtune.data.validate import validate_dataset
    from drawtune.errors import StageError

    png(tmp_path / "a.png")
    images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "gone.png"}]
    path = write_coco(tmp_path / "ann.json", images, [ann(1, [1, 1, 5, 5])])
    ds = {"format": "coco", "annotations": str(path)}
    out = {k: tmp_path / f"{k}.out" for k in ("records", "rejects", "summary")}
    summary = validate_dataset(
        ds, RULES, ResizeSpec(), 0.5, out["records"], out["rejects"], out["summary"], "d"
    )
    assert summary == {"dataset": "d", "read": 2, "converted": 1, "rejected": 1}
    assert len(out["records"].read_text().splitlines()) == 1
    assert json.loads(out["rejects"].read_text())["record"] == "images[1] (id 2)"
    with pytest.raises(StageError, match="1 of 2 records rejected"):
        validate_dataset(
            ds, RULES, ResizeSpec(), 0.4, out["records"], out["rejects"], out["summary"], "d"
        )


def test_validate_dataset_malformed_file_is_a_stage_error(tmp_path):
    from drawtune.data.validate import validate_dataset
    from drawtune.errors import StageError

    path = tmp_path / "ann.json"
    path.write_text("{\n  oops\n}")
    ds = {"format": "coco", "annotations": str(path)}
    with pytest.raises(StageError, match="line 2 column 3"):
        validate_dataset(
            ds, RULES, ResizeSpec(), 0.2, tmp_path / "r", tmp_path / "j", tmp_path / "s", "d"
        )
