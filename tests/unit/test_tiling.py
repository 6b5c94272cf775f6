"""Large sheets as tiles (issue 18): the tiles of a sheet, boxes clipped into them and mapped
back, the merge across tile borders, a tiled split written and read back, scores at sheet
coordinates, and the tiling a model carries. Exact numbers throughout."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from pixel_detector import PixelClient, tiled_config

from drawtune.coords import ResizeSpec, model_frame
from drawtune.data.convert import answer_text
from drawtune.data.tiling import (
    MODEL_TILING,
    Tiling,
    TilingError,
    View,
    convert_tiled_split,
    model_tiling,
    sheet_views,
    tile_boxes,
    view_boxes,
    whole_view,
    write_model_tiling,
)
from drawtune.eval.merge_tiles import (
    TileMerge,
    box_score,
    merge_boxes,
    score_sheets,
    sheet_predictions,
)
from drawtune.jsonio import dump_jsonl, load_jsonl

SPEC = ResizeSpec(min_pixels=3136, max_pixels=200704)
TILING = Tiling(size=400, overlap=0.25, min_visible=0.3, whole=True)


def test_tiles_cover_the_sheet_with_the_configured_overlap():
    # 1000 x 700, tiles of 400 sharing 0.25 x 400 = 100 px: steps of 300
    tiles = tile_boxes(1000, 700, TILING)
    assert tiles == [
        [0, 0, 400, 400],
        [300, 0, 700, 400],
        [600, 0, 1000, 400],
        [0, 300, 400, 700],
        [300, 300, 700, 700],
        [600, 300, 1000, 700],
    ]
    covered = set()
    for x1, y1, x2, y2 in tiles:
        assert (x2 - x1, y2 - y1) == (400, 400)
        covered |= {(x, y) for x in range(x1, x2, 10) for y in range(y1, y2, 10)}
    assert covered == {(x, y) for x in range(0, 1000, 10) for y in range(0, 700, 10)}
    # neighbours share exactly the overlap here
    assert tiles[0][2] - tiles[1][0] == 100 and tiles[0][3] - tiles[3][1] == 100


def test_last_tile_moves_back_to_the_border_and_small_sheets_stay_whole():
    # 500 high: the second row would end at 700, so it is moved back to end at 500
    rows = sorted({(y1, y2) for _, y1, _, y2 in tile_boxes(1000, 500, TILING)})
    assert rows == [(0, 400), (100, 500)]
    assert tile_boxes(400, 400, TILING) == []  # fits in one tile: shown whole only
    views = sheet_views(400, 300, TILING, "qwen3_vl", SPEC)
    assert views == [View("whole", (0, 0), 400, 300)]
    no_whole = Tiling(size=400, overlap=0.25, whole=False)
    assert [v.kind for v in sheet_views(1000, 700, no_whole, "qwen3_vl", SPEC)] == ["tile"] * 6
    assert [v.kind for v in sheet_views(1000, 700, TILING, "qwen3_vl", SPEC)] == [
        "whole",
        *["tile"] * 6,
    ]


def test_box_across_a_tile_border_is_clipped_in_both_and_maps_back_to_the_sheet_box():
    box = {"label": "note", "bbox": [250, 50, 450, 150]}  # crosses x = 300 and x = 400
    views = sheet_views(1000, 700, TILING, "qwen3_vl", SPEC)
    held = {v.offset: view_boxes([box], v, TILING.min_visible) for v in views if v.kind == "tile"}
    assert held == {
        (0, 0): [{"label": "note", "bbox": [250.0, 50.0, 400.0, 150.0]}],
        (300, 0): [{"label": "note", "bbox": [0.0, 50.0, 150.0, 150.0]}],
        (600, 0): [],
        (0, 300): [],
        (300, 300): [],
        (600, 300): [],
    }
    left = View("tile", (0, 0), 400, 400).to_sheet(held[(0, 0)][0]["bbox"])
    right = View("tile", (300, 0), 400, 400).to_sheet(held[(300, 0)][0]["bbox"])
    assert left == [250.0, 50.0, 400.0, 150.0] and right == [300.0, 50.0, 450.0, 150.0]
    merged = merge_boxes(
        [{"label": "note", "bbox": b, "score": 1.0} for b in (left, right)], TileMerge()
    )
    assert merged == [{"label": "note", "bbox": [250.0, 50.0, 450.0, 150.0], "score": 1.0}]


def test_slivers_below_min_visible_are_dropped():
    sliver = {"label": "view", "bbox": [390, 10, 490, 60]}  # 10 of its 100 px in tile (0, 0)
    first, second = (v for v in sheet_views(1000, 700, TILING, "qwen3_vl", SPEC)[1:3])
    assert view_boxes([sliver], first, 0.3) == []
    assert view_boxes([sliver], first, 0.1) == [
        {"label": "view", "bbox": [390.0, 10.0, 400.0, 60.0]}
    ]
    assert view_boxes([sliver], second, 0.3) == [
        {"label": "view", "bbox": [90.0, 10.0, 190.0, 60.0]}
    ]


def test_whole_view_is_the_image_the_model_sees_and_scales_back():
    # qwen3_vl: 1000 x 700 under 200704 px in 32-px tokens is 512 x 352
    v = whole_view(1000, 700, "qwen3_vl", SPEC)
    assert (v.width, v.height, v.scale) == (512, 352, (1000 / 512, 700 / 352))
    assert v.crop == (0, 0, 1000, 700)
    (b,) = view_boxes([{"label": "view", "bbox": [250, 50, 450, 150]}], v, 0.3)
    assert v.to_sheet(b["bbox"]) == pytest.approx([250, 50, 450, 150])
    # its answer is the untiled sheet's in 0-1000 coordinates
    assert answer_text([b], "qwen3_vl", 512, 352, SPEC) == answer_text(
        [{"label": "view", "bbox": [250, 50, 450, 150]}], "qwen3_vl", 1000, 700, SPEC
    )
    # qwen2_5_vl: 28-px tokens; the model's resize leaves the view as it is
    v = whole_view(1000, 700, "qwen2_5_vl", SPEC)
    assert (v.width, v.height) == (532, 364)
    assert model_frame("qwen2_5_vl", 532, 364, SPEC) == (532, 364)


def test_merge_methods_metrics_and_classes():
    halves = [
        {"label": "view", "bbox": [300, 100, 512, 200], "score": 1.0},
        {"label": "view", "bbox": [384, 100, 600, 200], "score": 1.0},
    ]
    # intersection 128 x 100 over the smaller half (212 x 100): 0.60 >= 0.5
    assert [b["bbox"] for b in merge_boxes(halves, TileMerge())] == [[300, 100, 600, 200]]
    # by IoU they overlap 12800 / 30000 = 0.43 < 0.5: two boxes
    assert len(merge_boxes(halves, TileMerge(metric="iou"))) == 2
    # NMS keeps one half as it is; the higher score wins
    scored = [{**halves[0], "score": 0.4}, {**halves[1], "score": 0.9}]
    assert merge_boxes(scored, TileMerge(method="nms")) == [
        {"label": "view", "bbox": [384, 100, 600, 200], "score": 0.9}
    ]
    # per class: a note over a view stays; across classes the better label is kept
    mixed = [halves[0], {**halves[1], "label": "note", "score": 0.5}]
    assert len(merge_boxes(mixed, TileMerge())) == 2
    assert merge_boxes(mixed, TileMerge(per_class=False)) == [
        {"label": "view", "bbox": [300, 100, 600, 200], "score": 1.0}
    ]
    assert merge_boxes([], TileMerge()) == []
    for bad in ({"method": "nmm"}, {"method": "wbf"}, {"metric": "giou"}):
        with pytest.raises(TilingError, match=next(iter(bad.values()))):
            TileMerge.of(bad)


def test_box_scores_come_from_the_answer_when_it_has_them():
    assert box_score(("view", [0, 0, 1, 1])) == 1.0
    assert box_score(("view", [0, 0, 1, 1], 0.25)) == 0.25
    assert box_score({"label": "view", "score": 0.5}) == 0.5

    class Box:
        score = 0.75

    assert box_score(Box()) == 0.75


def _sheet(tmp_path, name="big.png", size=(1000, 700)):
    im = Image.new("L", size, 255)
    for x in range(0, size[0], 50):  # a pattern, so that crops differ
        im.paste(x % 256, (x, 0, x + 10, size[1]))
    path = tmp_path / name
    im.save(path)
    return path


def test_tiled_split_is_written_and_perfect_answers_merge_back_to_the_truth(tmp_path):
    sheet = _sheet(tmp_path)
    boxes = [
        {"label": "note", "bbox": [250, 50, 450, 150]},  # across a tile border
        {"label": "title_block", "bbox": [40, 440, 960, 680]},  # seen whole only
        {"label": "view", "bbox": [620, 320, 700, 380]},  # inside several tiles
    ]
    record = {
        "image": str(sheet),
        "sha256": "ab" * 32,
        "width": 1000,
        "height": 700,
        "boxes": boxes,
    }
    dump_jsonl([record], tmp_path / "test.jsonl")
    tiles = tmp_path / "tiles"
    tiling = Tiling(size=400, overlap=0.25, min_visible=0.5, whole=True)
    n = convert_tiled_split(
        tmp_path / "test.jsonl",
        "qwen3_vl",
        "Detect.",
        SPEC,
        tiling,
        tmp_path / "out.jsonl",
        tmp_path / "out.manifest.jsonl",
        tiles,
    )
    rows, manifest = load_jsonl(tmp_path / "out.jsonl"), load_jsonl(tmp_path / "out.manifest.jsonl")
    assert n == len(rows) == len(manifest) == 7
    assert [(m["view"], m["offset"]) for m in manifest] == [
        ("whole", [0, 0]),
        ("tile", [0, 0]),
        ("tile", [300, 0]),
        ("tile", [600, 0]),
        ("tile", [0, 300]),
        ("tile", [300, 300]),
        ("tile", [600, 300]),
    ]
    assert manifest[0]["scale"] == [1.953125, round(700 / 352, 9)]
    assert all(m["scale"] == [1.0, 1.0] for m in manifest[1:])
    assert {m["sheet"] for m in manifest} == {str(sheet)}
    assert len(list(tiles.iterdir())) == 7
    with Image.open(sheet) as im, Image.open(manifest[2]["image"]) as tile:
        assert tile.size == (400, 400)
        assert tile.tobytes() == im.crop((300, 0, 700, 400)).tobytes()
    with Image.open(manifest[0]["image"]) as whole:
        assert whole.size == (512, 352)
    answers = [json.loads(r["messages"][1]["content"].strip("`json\n")) for r in rows]
    assert answers[2] == [  # tile (300, 0) in 0-1000: the note clipped, the view whole
        {"bbox_2d": [0, 125, 375, 375], "label": "note"},
        {"bbox_2d": [800, 800, 1000, 950], "label": "view"},
    ]
    # the title block is in the whole view; in the tiles it is cut below min_visible
    assert sum(a["label"] == "title_block" for ans in answers for a in ans) == 1
    # a model answering each view perfectly: the sheet's boxes come back, to the 0-1000 grid of
    # the whole view (0.7 px a step down this 700 px sheet: 50 -> 71 -> 49.7), merged with the
    # tiles' exact ones (the note from both halves, the view from four tiles)
    results = [
        {"images": [{"path": r["images"][0]}], "response": r["messages"][1]["content"]}
        for r in rows
    ]
    (got,) = sheet_predictions(results, manifest, "qwen3_vl", SPEC, TileMerge())
    assert got["images"] == [str(sheet)] and got["n_views"] == 7 and got["parsed"]
    assert got["n_view_boxes"] == 3 + 2 + 4
    assert [(b["label"], b["bbox"]) for b in got["boxes"]] == [
        ("note", [250.0, 49.7, 450.0, 150.0]),
        ("view", [620.0, 319.9, 700.0, 380.1]),
        ("title_block", [40.0, 440.3, 960.0, 679.7]),
    ]
    # without the whole view the tiles give the exact boxes (the title block is lost: cut
    # below min_visible in every tile, which is what the whole view is for)
    tile_rows = [r for r, m in zip(results, manifest, strict=True) if m["view"] == "tile"]
    tile_manifest = [m for m in manifest if m["view"] == "tile"]
    (alone,) = sheet_predictions(tile_rows, tile_manifest, "qwen3_vl", SPEC, TileMerge())
    assert [(b["label"], b["bbox"]) for b in alone["boxes"]] == [
        ("note", [250.0, 50.0, 450.0, 150.0]),
        ("view", [620.0, 320.0, 700.0, 380.0]),
    ]
    truth = {
        "images": [{"id": 1, "file_name": str(sheet), "width": 1000, "height": 700}],
        "categories": [
            {"id": i + 1, "name": c} for i, c in enumerate(("view", "title_block", "note"))
        ],
        "annotations": [
            {
                "id": k + 1,
                "image_id": 1,
                "category_id": {"view": 1, "title_block": 2, "note": 3}[b["label"]],
                "bbox": [
                    b["bbox"][0],
                    b["bbox"][1],
                    b["bbox"][2] - b["bbox"][0],
                    b["bbox"][3] - b["bbox"][1],
                ],
                "area": (b["bbox"][2] - b["bbox"][0]) * (b["bbox"][3] - b["bbox"][1]),
                "iscrowd": 0,
            }
            for k, b in enumerate(boxes)
        ],
    }
    metrics, details = score_sheets([got], truth)
    assert metrics["map"] == 1.0 and metrics["n_images"] == 1 and metrics["n_unparseable"] == 0
    assert details[0]["image"] == str(sheet) and details[0]["n_views"] == 7
    # one view unreadable and one missing: the sheet counts as unparseable, the rest is kept
    broken = [{**results[0], "response": "no idea"}, *results[1:5], *results[6:]]
    (got,) = sheet_predictions(broken, manifest, "qwen3_vl", SPEC, TileMerge())
    assert got["n_unparseable_views"] == 2 and not got["parsed"]
    metrics, _ = score_sheets([got], truth)
    assert metrics["n_unparseable"] == 1


def test_manifest_frames_are_checked_against_the_resize_settings(tmp_path):
    sheet = _sheet(tmp_path, size=(600, 500))
    record = {"image": str(sheet), "sha256": "cd" * 32, "width": 600, "height": 500, "boxes": []}
    dump_jsonl([record], tmp_path / "r.jsonl")
    args = (tmp_path / "o.jsonl", tmp_path / "o.manifest.jsonl", tmp_path / "t")
    convert_tiled_split(tmp_path / "r.jsonl", "qwen2_5_vl", "p", SPEC, TILING, *args)
    manifest = load_jsonl(tmp_path / "o.manifest.jsonl")
    other = ResizeSpec(min_pixels=3136, max_pixels=50176)
    with pytest.raises(TilingError, match="manifest frame"):
        sheet_predictions([], manifest, "qwen2_5_vl", other, TileMerge())
    with pytest.raises(TilingError, match="no tiled view"):
        sheet_predictions([], [{"image": "x.png"}], "qwen3_vl", SPEC, TileMerge())


def test_the_tiling_travels_with_the_model(tmp_path):
    assert model_tiling(tmp_path) is None
    assert model_tiling(tmp_path, {"size": 512, "overlap": 0.1, "merge": {}}) == Tiling(512, 0.1)
    write_model_tiling(tmp_path, None)
    assert not (tmp_path / MODEL_TILING).exists()
    write_model_tiling(tmp_path, TILING)
    assert json.loads((tmp_path / MODEL_TILING).read_text()) == {
        "min_visible": 0.3,
        "overlap": 0.25,
        "size": 400,
        "whole": True,
    }
    # the record next to the model wins over the config
    assert model_tiling(tmp_path, {"size": 512}) == TILING
    (tmp_path / MODEL_TILING).write_text("[1]")
    with pytest.raises(TilingError, match="not a tiling record"):
        model_tiling(tmp_path)


def test_synth_large_sheets_have_many_small_objects(tmp_path):
    from drawtune.cli import main
    from drawtune.data.synth import CLASSES, draw_large_sheet, draw_sheet, write_dataset

    assert (
        main(
            [
                "synth",
                "--n",
                "2",
                "--width",
                "2000",
                "--object-scale",
                "0.2",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    coco = json.loads((tmp_path / "a" / "annotations.json").read_text())
    assert [(i["width"], i["height"]) for i in coco["images"]] == [(2000, 1414)] * 2
    widths = sorted(a["bbox"][2] for a in coco["annotations"])
    assert len(widths) > 2 * 30  # dozens of objects a sheet
    assert widths[len(widths) // 2] < 0.1 * 2000  # most of them small on the sheet
    assert {c["name"] for c in coco["categories"]} == set(CLASSES)
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 2000 and y + h <= 1414
    # deterministic, and object_scale 1 is the usual sheet
    again = write_dataset(tmp_path / "b", 2, width=2000, object_scale=0.2)
    assert again["annotations"] == coco["annotations"]
    a, b = (tmp_path / p / "images" / "sheet_0000_00001.png" for p in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    img, boxes = draw_large_sheet(0, 0, 2000, 0.2)
    assert img.size == (2000, 1414) and len(boxes) > 30
    usual = write_dataset(tmp_path / "c", 1, width=640)
    _, want = draw_sheet(0, 0, 640)
    assert len(usual["annotations"]) == len(want)


def test_ask_sends_every_view_and_merges_the_boxes_on_the_drawing(tmp_path, monkeypatch):
    from drawtune.serve import ask

    monkeypatch.chdir(tmp_path)
    im = Image.new("L", (1000, 700), 255)
    im.paste(0, (250, 50, 450, 150))  # one object across the border of two tiles
    im.save(tmp_path / "sheet.png")
    cfg = tiled_config({"size": 400, "overlap": 0.25})
    client = PixelClient()
    got = ask(client, "tiled", tmp_path / "sheet.png", cfg)
    # the whole view (512 x 352) and six tiles, each asked once
    assert client.sizes == [(512, 352), *[(400, 400)] * 6]
    assert got["parsed"] and got["n_views"] == 7 and len(got["response"]) == 7
    (box,) = got["boxes"]
    assert box["label"] == "view"
    # the tiles' halves are exact; the whole view's 0-1000 answer (0.7 px steps down the
    # sheet) widens the union at the top only
    assert box["bbox"] == [250.0, 49.7, 450.0, 150.0]
    # an untiled experiment is asked once, about the drawing itself
    client = PixelClient()
    plain = ask(client, "plain", tmp_path / "sheet.png", cfg)
    assert client.sizes == [(1000, 700)] and plain["boxes"] == [
        {"label": "view", "bbox": [250.0, 49.7, 450.0, 149.8]}
    ]
    # nms keeps one of the views' boxes instead of their union
    cfg = tiled_config({"size": 400, "overlap": 0.25, "merge": {"method": "nms"}})
    (kept,) = ask(PixelClient(), "tiled", tmp_path / "sheet.png", cfg)["boxes"]
    assert kept["bbox"] == [250.0, 49.7, 449.0, 149.1]  # the whole view's, first of the ties


def test_fast_views_have_the_same_pixels(tmp_path):
    """The serving front's views (zlib level 1, several threads) are the training views'
    pixels, in the same order and names."""
    from drawtune.data.tiling import write_views

    sheet = tmp_path / "sheet.png"
    im = Image.effect_noise((1000, 700), 64).convert("L")
    im.save(sheet)
    views = sheet_views(1000, 700, TILING, "qwen3_vl", SPEC)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    slow = write_views(str(sheet), 1000, 700, views, tmp_path / "a", "s")
    fast = write_views(str(sheet), 1000, 700, views, tmp_path / "b", "s", fast=True)
    assert [p.split("/")[-1] for p in slow] == [p.split("/")[-1] for p in fast] and len(fast) == 7
    for a, b in zip(slow, fast, strict=True):
        with Image.open(a) as x, Image.open(b) as y:
            assert x.size == y.size and x.tobytes() == y.tobytes()
