"""Records -> ms-swift rows -> (perfect) answers -> scores, in both coordinate conventions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drawtune.cli import main
from drawtune.coords import ResizeSpec
from drawtune.data.coco import read_coco
from drawtune.data.convert import answer_text, manifest_row, swift_row, truth_coco
from drawtune.data.records import Rules
from drawtune.data.synth import CLASSES, write_dataset
from drawtune.errors import StageError
from drawtune.eval.match import match_results
from drawtune.eval.score import DETECTION_KEYS, score
from drawtune.jsonio import dump_jsonl, load_jsonl

SPEC = ResizeSpec()

REC_640 = {
    "image": "imgs/a.png",
    "sha256": "abc",
    "width": 640,
    "height": 480,
    "boxes": [
        {"label": "note", "bbox": [320, 240, 640, 480]},
        {"label": "view", "bbox": [64, 48, 320, 240]},
        {"label": "table", "bbox": [0, 240, 64, 300]},
    ],
    "group": None,
}
REC_1000 = {
    "image": "imgs/b.png",
    "sha256": "def",
    "width": 1000,
    "height": 700,
    "boxes": [
        {"label": "view", "bbox": [100, 50, 500, 350]},
        {"label": "title_block", "bbox": [0, 0, 1000, 700]},
    ],
    "group": None,
}


def test_swift_row_qwen3():
    row = swift_row(REC_640, "qwen3_vl", "Find objects.", SPEC)
    # 640x480: x*1000/640, y*1000/480; reading order = by y1, then x1:
    #   view  [64, 48, 320, 240]  -> [100, 100, 500, 500]   (y1 100)
    #   table [0, 240, 64, 300]   -> [0, 500, 100, 625]     (y1 500, x1 0)
    #   note  [320, 240, 640, 480] -> [500, 500, 1000, 1000] (y1 500, x1 500)
    expected = (
        "```json\n"
        '[{"bbox_2d": [100, 100, 500, 500], "label": "view"}, '
        '{"bbox_2d": [0, 500, 100, 625], "label": "table"}, '
        '{"bbox_2d": [500, 500, 1000, 1000], "label": "note"}]'
        "\n```"
    )
    assert row == {
        "messages": [
            {"role": "user", "content": "<image>Find objects."},
            {"role": "assistant", "content": expected},
        ],
        "images": ["imgs/a.png"],
    }


def test_swift_row_qwen25():
    row = swift_row(REC_1000, "qwen2_5_vl", "Find objects.", SPEC)
    # 1000x700 is seen as 1008x700: x*1.008, y unchanged
    #   title_block [0, 0, 1000, 700] -> [0, 0, 1008, 700]   (y1 0 comes first)
    #   view [100, 50, 500, 350]      -> [101, 50, 504, 350] (100.8 -> 101)
    expected = (
        "```json\n"
        '[{"bbox_2d": [0, 0, 1008, 700], "label": "title_block"}, '
        '{"bbox_2d": [101, 50, 504, 350], "label": "view"}]'
        "\n```"
    )
    assert row["messages"][1] == {"role": "assistant", "content": expected}
    assert row["messages"][0]["content"] == "<image>Find objects."
    assert row["images"] == ["imgs/b.png"]


def test_answer_ties_broken_by_label_and_empty_answer():
    boxes = [{"label": "view", "bbox": [0, 0, 10, 10]}, {"label": "note", "bbox": [0, 0, 10, 10]}]
    text = answer_text(boxes, "qwen3_vl", 100, 100, SPEC)
    assert text == (
        '```json\n[{"bbox_2d": [0, 0, 100, 100], "label": "note"}, '
        '{"bbox_2d": [0, 0, 100, 100], "label": "view"}]\n```'
    )
    assert answer_text([], "qwen3_vl", 100, 100, SPEC) == "```json\n[]\n```"


def test_answer_keeps_non_ascii_labels():
    text = answer_text([{"label": "vue_coupée", "bbox": [0, 0, 1, 1]}], "qwen3_vl", 10, 10, SPEC)
    assert "vue_coupée" in text


def test_manifest_row():
    # qwen2_5_vl: factor 28 -> 1008x700 both as resized image and as answer frame
    assert manifest_row(REC_1000, "qwen2_5_vl", SPEC) == {
        "image": "imgs/b.png",
        "sha256": "def",
        "width": 1000,
        "height": 700,
        "resized_width": 1008,
        "resized_height": 700,
        "frame_width": 1008,
        "frame_height": 700,
    }
    # qwen3_vl: factor 32 -> round(1000/32) = 31 -> 992, round(700/32) = 22 -> 704;
    # the answer frame is 1000x1000 regardless
    m = manifest_row(REC_1000, "qwen3_vl", SPEC)
    assert (m["resized_width"], m["resized_height"]) == (992, 704)
    assert (m["frame_width"], m["frame_height"]) == (1000, 1000)


def test_truth_coco():
    coco = truth_coco([REC_640, REC_1000], ["view", "note", "table", "title_block"])
    assert coco["categories"] == [
        {"id": 1, "name": "view"},
        {"id": 2, "name": "note"},
        {"id": 3, "name": "table"},
        {"id": 4, "name": "title_block"},
    ]
    assert coco["images"] == [
        {"id": 1, "file_name": "imgs/a.png", "width": 640, "height": 480},
        {"id": 2, "file_name": "imgs/b.png", "width": 1000, "height": 700},
    ]
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3, 4, 5]
    assert [a["image_id"] for a in anns] == [1, 1, 1, 2, 2]
    assert anns[0] == {
        "id": 1,
        "image_id": 1,
        "category_id": 2,
        "bbox": [320, 240, 320, 240],
        "area": 76800,
        "iscrowd": 0,
    }
    assert anns[3]["bbox"] == [100, 50, 400, 300]
    assert anns[3]["category_id"] == 1
    assert anns[4]["category_id"] == 4


def test_truth_coco_rounds_float_sizes():
    rec = {**REC_640, "boxes": [{"label": "view", "bbox": [0.1, 0.2, 10.3, 20.5]}]}
    (a,) = truth_coco([rec], ["view"])["annotations"]
    assert a["bbox"] == [0.1, 0.2, 10.2, 20.3]
    assert a["area"] == round(10.2 * 20.3, 3)


# ---------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def synth_records(tmp_path_factory):
    """Records of synthetic sheets whose sides are not multiples of 28 (nor 32)."""
    out = {}
    for seed, width in ((5, 437), (6, 450)):  # 437x309 and 450x318; distinct file names
        folder = tmp_path_factory.mktemp(f"synth{width}")
        write_dataset(folder, n=3, seed=seed, width=width)
        res = read_coco(folder / "annotations.json", Rules(classes=CLASSES))
        assert res.rejects == []
        out[width] = res.records
    recs = out[437] + out[450]
    assert {(r["width"], r["height"]) for r in recs} == {(437, 309), (450, 318)}
    return recs


def perfect_rows(records, family, spec):
    return [
        {
            "response": swift_row(r, family, "p", spec)["messages"][1]["content"],
            "images": [{"path": r["image"]}],
        }
        for r in records
    ]


@pytest.mark.parametrize(
    "family, spec",
    [
        ("qwen3_vl", SPEC),
        ("qwen2_5_vl", SPEC),
        ("qwen2_5_vl", ResizeSpec(min_pixels=3136, max_pixels=50_000)),  # downscaled frame
    ],
)
def test_perfect_answers_score_one(synth_records, family, spec):
    truth = truth_coco(synth_records, list(CLASSES))
    manifest = [manifest_row(r, family, spec) for r in synth_records]
    metrics, details = score(
        perfect_rows(synth_records, family, spec), truth, family, spec, manifest
    )
    assert metrics["map50"] == 1.0
    assert metrics["recall50"] == 1.0
    assert metrics["precision50"] == 1.0
    assert metrics["n_unparseable"] == 0
    assert metrics["n_images"] == len(synth_records)
    assert all(d["matched"] and d["parsed"] and not d["salvaged"] for d in details)
    n_boxes = sum(len(r["boxes"]) for r in synth_records)
    assert sum(len(d["boxes"]) for d in details) == n_boxes


def test_wrong_family_scores_badly(synth_records):
    # qwen2.5 pixel answers read as qwen3 thousandths land in the wrong place
    truth = truth_coco(synth_records, list(CLASSES))
    rows = perfect_rows(synth_records, "qwen2_5_vl", SPEC)
    metrics, _ = score(rows, truth, "qwen3_vl", SPEC)
    assert metrics["map50"] < 0.5


def test_garbage_and_missing_rows_are_unparseable(synth_records):
    truth = truth_coco(synth_records, list(CLASSES))
    rows = perfect_rows(synth_records, "qwen3_vl", SPEC)
    rows[0]["response"] = "I am sorry, I cannot help with that."
    rows[1]["response"] = "```json\n[]\n```"  # valid, just empty
    del rows[2]  # no result for the third image at all
    metrics, details = score(rows, truth, "qwen3_vl", SPEC)
    assert metrics["n_unparseable"] == 2
    assert [d["parsed"] for d in details[:3]] == [False, True, False]
    assert details[2]["matched"] is False
    assert details[0]["response"].startswith("I am sorry")
    assert 0.0 < metrics["recall50"] < 1.0
    assert metrics["precision50"] == 1.0


def test_manifest_from_other_settings_is_refused(synth_records):
    truth = truth_coco(synth_records, list(CLASSES))
    rows = perfect_rows(synth_records, "qwen2_5_vl", SPEC)
    stale = [manifest_row(r, "qwen2_5_vl", ResizeSpec(3136, 50_000)) for r in synth_records]
    with pytest.raises(StageError, match="manifest frame"):
        score(rows, truth, "qwen2_5_vl", SPEC, stale)


def test_rows_matched_by_file_name_across_folders(synth_records):
    truth = truth_coco(synth_records, list(CLASSES))
    rows = perfect_rows(synth_records, "qwen3_vl", SPEC)
    for r in rows:
        r["images"] = [{"path": "/elsewhere/results/" + Path(r["images"][0]["path"]).name}]
    rows.reverse()
    metrics, details = score(rows, truth, "qwen3_vl", SPEC)
    assert metrics["map50"] == 1.0
    assert metrics["n_unparseable"] == 0
    assert all(d["matched"] for d in details)


def test_match_results_prefers_path_and_refuses_ambiguous_names():
    truth = {
        "images": [
            {"id": 1, "file_name": "a/x.png"},
            {"id": 2, "file_name": "a/y.png"},
            {"id": 3, "file_name": "a/z.png"},
        ]
    }
    rows = [
        {"images": ["b/x.png"], "response": "1"},
        {"images": [{"path": "a/x.png"}], "response": "2"},
        {"images": ["b/y.png"], "response": "3"},
        {"images": ["c/y.png"], "response": "4"},
        {"images": [], "response": "5"},
    ]
    pairs = match_results(rows, truth)
    assert [img["id"] for img, _ in pairs] == [1, 2, 3]
    assert pairs[0][1]["response"] == "2"  # exact path wins over the name match
    assert pairs[1][1] is None  # y.png is in two folders: no guess
    assert pairs[2][1] is None


def test_match_results_does_not_reuse_a_row_matched_by_path():
    truth = {
        "images": [{"id": 1, "file_name": "d1/0001.png"}, {"id": 2, "file_name": "d2/0001.png"}]
    }
    rows = [{"images": ["d1/0001.png"], "response": "[]"}]  # no result for d2's image
    pairs = match_results(rows, truth)
    assert pairs[0][1] is rows[0]
    assert pairs[1][1] is None


# -------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_cli_convert_and_score(tmp_path, family, capsys):
    ds = tmp_path / "ds"
    coco = write_dataset(ds, n=3, seed=2, width=320)
    out = tmp_path / "train.jsonl"
    manifest = tmp_path / "manifest.jsonl"
    rc = main(
        [
            "convert",
            "--input",
            str(ds / "annotations.json"),
            "--format",
            "coco",
            "--family",
            family,
            "--out",
            str(out),
            "--manifest",
            str(manifest),
            "--prompt",
            "Find.",
        ]
    )
    assert rc == 0
    assert "read 3, converted 3, rejected 0" in capsys.readouterr().out
    rows = load_jsonl(out)
    assert len(out.read_text().splitlines()) == 3
    assert len(load_jsonl(manifest)) == 3
    assert all(r["messages"][0]["content"] == "<image>Find." for r in rows)

    results = tmp_path / "results.jsonl"
    dump_jsonl(
        [
            {"response": r["messages"][1]["content"], "images": [{"path": r["images"][0]}]}
            for r in rows
        ],
        results,
    )
    metrics_out = tmp_path / "metrics.json"
    rc = main(
        [
            "score",
            "--results",
            str(results),
            "--truth",
            str(ds / "annotations.json"),  # file names differ from the rows' paths by folder
            "--family",
            family,
            "--out",
            str(metrics_out),
        ]
    )
    assert rc == 0
    metrics = json.loads(metrics_out.read_text())
    assert set(metrics) == set(DETECTION_KEYS)
    assert metrics["scores"] == "none"  # rows without log-probabilities score as before
    assert metrics["n_images"] == len(coco["images"]) == 3
    assert metrics["n_unparseable"] == 0
    assert metrics["map50"] == 1.0


def test_cli_convert_rejects_and_on_error(tmp_path, capsys):
    ds = tmp_path / "ds"
    coco = write_dataset(ds, n=2, seed=1, width=320)
    coco["images"].append({"id": 99, "file_name": "images/lost.png"})
    (ds / "annotations.json").write_text(json.dumps(coco))
    args = ["convert", "--input", str(ds / "annotations.json"), "--format", "coco"]
    args += ["--family", "qwen3_vl", "--out", str(tmp_path / "o.jsonl")]
    args += ["--rejects", str(tmp_path / "rej.jsonl")]
    args += ["--max-rejected-fraction", "0.5"]  # one of three rejected: under this limit
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "read 3, converted 2, rejected 1" in captured.out
    assert "lost.png" in captured.err
    assert len(load_jsonl(tmp_path / "o.jsonl")) == 2
    (rej,) = load_jsonl(tmp_path / "rej.jsonl")
    assert rej["record"] == "images[2] (id 99)"
    assert main([*args, "--on-error", "fail"]) == 1


def test_cli_convert_rejects_repeated_images_as_the_workflow_does(tmp_path, capsys):
    """Issue 13, bug 1: the same pixels twice with other boxes would teach two answers to one
    question; the workflow's split rejects the second, and so does `drawtune convert`."""
    ds = tmp_path / "ds"
    coco = write_dataset(ds, n=9, seed=4, width=320)
    twin = dict(coco["images"][0], id=77)  # the first drawing again, under another id
    coco["images"].append(twin)
    box = {"id": 999, "image_id": 77, "category_id": 1, "bbox": [1, 1, 20, 20], "area": 400}
    coco["annotations"].append(box)
    (ds / "annotations.json").write_text(json.dumps(coco))
    out, rej = tmp_path / "o.jsonl", tmp_path / "rej.jsonl"
    args = ["convert", "--input", str(ds / "annotations.json"), "--format", "coco"]
    args += ["--family", "qwen3_vl", "--out", str(out), "--rejects", str(rej)]
    assert main(args) == 0
    # issue 16, item 9: neither copy is kept (which is right cannot be told), and both
    # rejects count towards max_rejected_fraction (2 of 10 is not above 20 %)
    assert "read 10, converted 8, rejected 2" in capsys.readouterr().out
    assert len(load_jsonl(out)) == 8
    first, second = load_jsonl(rej)
    assert first["record"] == "images[0] (id 1)" and second["record"] == "images[9] (id 77)"
    assert all("with different boxes" in r["reason"] for r in (first, second))


def test_cli_convert_stops_over_max_rejected_fraction(tmp_path, capsys):
    """Issue 13, bug 1: more rejects than validation.max_rejected_fraction stop the command
    as they stop the workflow's validation, and nothing is written."""
    ds = tmp_path / "ds"
    coco = write_dataset(ds, n=2, seed=1, width=320)
    coco["images"].append({"id": 99, "file_name": "images/lost.png"})
    (ds / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "o.jsonl"
    args = ["convert", "--input", str(ds / "annotations.json"), "--format", "coco"]
    args += ["--family", "qwen3_vl", "--out", str(out)]
    assert main(args) == 1  # one of three: over the schema's default of 20%
    assert "max_rejected_fraction 20%" in capsys.readouterr().err and not out.exists()
    assert main([*args, "--max-rejected-fraction", "0.4"]) == 0
    assert len(load_jsonl(out)) == 2


def test_cli_convert_malformed_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "ann.json"
    bad.write_text("{\n")
    rc = main(
        ["convert", "--input", str(bad), "--format", "coco", "--family", "qwen3_vl"]
        + ["--out", str(tmp_path / "o.jsonl"), "--classes", "view"]
    )
    assert rc == 2
    assert "malformed JSON at line 2" in capsys.readouterr().err


def test_single_view_sheets_keep_one_view_and_leave_other_sheets_alone():
    """synthetic.max_views (a curriculum's first stage): each sheet keeps at most that many
    views of any kind, in one larger cell; title block, table and notes as before."""
    from drawtune.data.synth import draw_sheet

    view_kinds = {"view", "section_view", "detail_view"}
    many = 0
    for i in range(12):
        _, usual = draw_sheet(5, i, 320)
        img, single = draw_sheet(5, i, 320, max_views=1)
        views = [(label, b) for label, b in single if label in view_kinds]
        assert len(views) == 1
        usual_views = [(label, b) for label, b in usual if label in view_kinds]
        many += len(usual_views) > 1
        # everything but the views is the same sheet
        assert [x for x in single if x[0] not in view_kinds] == [
            x for x in usual if x[0] not in view_kinds
        ]
        # the first view drawn, of the same kind, drawn in the whole free area: no smaller
        (kind, (x1, y1, x2, y2)), (first, b) = views[0], usual_views[0]
        assert kind == first and (x2 - x1) * (y2 - y1) >= (b[2] - b[0]) * (b[3] - b[1])
        assert img.size == (320, 226)
    assert many >= 6  # the usual sheets mostly have several
    assert draw_sheet(5, 0, 320, max_views=9)[1] == draw_sheet(5, 0, 320)[1]
