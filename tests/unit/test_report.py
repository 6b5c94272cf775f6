"""The report (issue 20): detection matching at IoU 0.5, the leaderboard and the first page,
the model and data pages and their section hooks, the error gallery's pictures, the compare
page and the price of a GPU hour."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from drawtune import paths
from drawtune.eval.confusion import FALSE_ALARM, MISSED, match_detections
from drawtune.eval.metrics import coco_metrics
from drawtune.report import CATEGORIES, gallery, pages
from drawtune.report.compare import compare_page
from drawtune.report.data_sections import reason_kind
from drawtune.report.html import Col, table
from drawtune.report.leaderboard import Entry, baseline_of, describe, home, leaderboard_page
from drawtune.report.price import gpu_hour_price
from drawtune.report.sections import DataContext, ModelContext, Section

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------- matching
TRUTH = {
    "images": [
        {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
        {"id": 2, "file_name": "b.png", "width": 200, "height": 100},
        {"id": 3, "file_name": "c.png", "width": 200, "height": 100},
    ],
    "categories": [{"id": 1, "name": "view"}, {"id": 2, "name": "note"}],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50]},  # found
        {"id": 11, "image_id": 1, "category_id": 2, "bbox": [120, 10, 40, 40]},  # taken for view
        {"id": 12, "image_id": 2, "category_id": 1, "bbox": [20, 20, 30, 30]},  # missed
        {"id": 13, "image_id": 3, "category_id": 2, "bbox": [0, 0, 20, 20]},  # found
    ],
}
DETAILS = [
    {"image": "a.png", "parsed": True, "boxes": [
        {"label": "view", "bbox": [12, 12, 62, 62]},
        {"label": "view", "bbox": [121, 11, 160, 50]},  # on the note: wrong class
        {"label": "stamp", "bbox": [170, 70, 190, 90]},  # a label outside the classes
    ]},
    {"image": "b.png", "parsed": False, "boxes": [], "response": "<script>x</script> not json"},
    {"image": "c.png", "parsed": True, "boxes": [{"label": "note", "bbox": [0, 0, 20, 20]}]},
]  # fmt: skip


def test_matching_per_class_counts_agree_with_coco_metrics():
    m = match_detections(TRUTH, DETAILS)
    assert m.per_class["view"] | {} == {
        "n_true": 2, "n_pred": 2, "tp": 1, "fp": 1, "fn": 1,
        "precision": 0.5, "recall": 0.5, "f1": 0.5,
    }  # fmt: skip
    assert (m.per_class["note"]["tp"], m.per_class["note"]["fn"]) == (1, 1)
    # the totals are coco_metrics' precision50 and recall50 (the stamp box is a false positive)
    preds = [
        {"image_id": i["id"], "label": b["label"], "bbox": b["bbox"]}
        for i, d in zip(TRUTH["images"], DETAILS, strict=True)
        for b in d["boxes"]
    ]
    coco = coco_metrics(TRUTH, preds)
    tp = sum(v["tp"] for v in m.per_class.values())
    n_pred = sum(len(d["boxes"]) for d in DETAILS)
    assert tp / n_pred == pytest.approx(coco["precision50"], abs=1e-6)
    assert tp / len(TRUTH["annotations"]) == pytest.approx(coco["recall50"], abs=1e-6)


def test_confusion_matrix_has_misses_and_false_alarms_of_their_own():
    c = match_detections(TRUTH, DETAILS).confusion
    assert c["rows"] == ["view", "note", FALSE_ALARM]
    assert c["cols"] == ["view", "note", "stamp", MISSED]
    assert c["matrix"] == [
        [1, 0, 0, 1],  # a view found, a view missed
        [1, 1, 0, 0],  # a note taken for a view, a note found
        [0, 0, 1, 0],  # the stamp matched no true box
    ]
    total_true = sum(sum(row) for row in c["matrix"][:-1])
    assert total_true == len(TRUTH["annotations"])


def test_worst_drawings_come_first_with_what_each_box_matched():
    m = match_detections(TRUTH, DETAILS)
    worst = m.worst(5)
    assert [d.image for d in worst] == ["a.png", "b.png"]  # c.png has no error
    a = worst[0]
    assert (a.misses, a.false_alarms) == (1, 2)
    note = next(t for t in a.truth if t.label == "note")
    assert not note.found and note.taken_for == "view"
    wrong = a.predicted[1]
    assert not wrong.correct and wrong.truth == "note"
    assert a.predicted[2].truth is None  # the stamp: a plain false alarm
    assert m.worst(1) == worst[:1]


# ---------------------------------------------------------------------------- leaderboard
def _det(map_, map50, unparseable=0):
    return {"map": map_, "map50": map50, "map75": 0.0, "precision50": 0.5, "recall50": 0.25,
            "f1_50": 0.333, "n_images": 10, "n_unparseable": unparseable,
            "per_class": {"view": {"ap": map_, "ap50": map50, "n_true": 3}}}  # fmt: skip


def _tele(device, gpus, secs, settings=None):
    row = {"step": 1, "elapsed_s": secs, "device": device, "gpus": gpus}
    if settings:
        row["settings"] = settings
    return [row]


def _entries():
    q3 = {"task": "detect", "base": "Qwen/Qwen3-VL-4B", "family": "qwen3_vl",
          "datasets": ["plant"]}  # fmt: skip
    q25 = {**q3, "base": "Qwen/Qwen2.5-VL-7B", "family": "qwen2_5_vl"}
    counts = {"train": 80, "val": 10, "test": 10}
    settings = {"batch_size": 8, "grad_accum": 2, "gradient_checkpointing": False,
                "dataloader_workers": 8, "liger": True, "lora_dtype": "bfloat16",
                "predicted_gib": 97.6, "gpu_gib": 139.8}  # fmt: skip
    return {
        "base": Entry("base", _det(0.1, 0.2, 10), {**q3, "tuner": "none"}, counts=counts),
        "small": Entry("small", _det(0.3, 0.5), {**q3, "tuner": "lora", "lora_rank": 8,
                       "epochs": 3, "learning_rate": 1e-4}, _tele("cpu", 1, 90), counts),
        "big": Entry("big", _det(0.5, 0.7), {**q3, "tuner": "full", "epochs": 1,
                     "learning_rate": 1e-5}, _tele("NVIDIA H100", 2, 3600, settings), counts),
        "q25_zero": Entry("q25_zero", _det(0.15, 0.3), {**q25, "tuner": "none"}, counts=counts),
        "q25": Entry("q25", _det(0.4, 0.6), {**q25, "tuner": "lora", "lora_rank": 16,
                     "epochs": 2, "learning_rate": 1e-4}, _tele("cpu", 1, 60), counts),
    }  # fmt: skip


def _rows(html: str) -> dict[str, list[str]]:
    """model -> its row's cells (tags removed)."""
    out = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html):
        cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
        if len(cells) > 2:
            out[cells[1]] = cells
    return out


def test_leaderboard_ranks_by_map_with_deltas_against_the_same_untrained_base():
    entries = _entries()
    assert baseline_of(entries["q25"], entries) == "q25_zero"  # the same base, untrained
    assert baseline_of(entries["big"], entries) == "base"
    assert baseline_of(entries["base"], entries) is None
    page = leaderboard_page(entries, note="tiny model", usd_per_gpu_hour=4.0, price_source="x")
    rows = _rows(page)
    ranks = {name: int(cells[0]) for name, cells in rows.items() if cells[0].isdigit()}
    assert sorted(ranks, key=ranks.get) == ["big", "q25", "small", "q25_zero", "base"]
    big, q25, base = rows["big"], rows["q25"], rows["base"]
    # mAP, Δ mAP, mAP50, Δ mAP50 ... time (min), GPU hours, cost (USD)
    assert big[2:6] == ["0.500", "+0.400", "0.700", "+0.500"]
    assert q25[2:6] == ["0.400", "+0.250", "0.600", "+0.300"]
    assert base[3] == "–" and base[-3:] == ["untrained", "–", "–"]
    assert big[-3:] == ["60.0", "2.000", "8.00"]  # 1 h on 2 GPUs at 4 USD per GPU hour
    assert rows["small"][-3:] == ["1.5", "CPU", "–"]
    assert base[9] == "100.0 %"  # unparseable answers
    assert "micro-batch 8 x 2, no checkpointing, 8 workers, Liger, LoRA bfloat16, planned 98 of " \
           "140 GiB" in page  # fmt: skip
    assert "class='best'" in page and page.count("class='best'") == 1
    assert "<span class='unit'>USD</span>" in page and "<td class='num'>0.500</td>" in page


def test_one_line_says_what_was_trained_on_what():
    e = _entries()
    line = describe(e["small"].info, e["small"].counts)
    assert line == (
        "LoRA rank 8 of Qwen/Qwen3-VL-4B (qwen3_vl), 3 epochs at learning rate 0.0001, on 80 "
        "training drawings (10 for validation) of dataset plant; tested on 10 drawings"
    )
    assert describe(e["base"].info, e["base"].counts).startswith("the untrained base model")
    # a curriculum's stage: the model it starts from, and only its own datasets' drawings
    # (the split's counts are the pooled ones)
    chained = {**e["small"].info, "init_from": "stage1", "train_datasets": ["single"]}
    assert describe(chained, e["small"].counts) == (
        "LoRA rank 8 of stage1's trained model (qwen3_vl), 3 epochs at learning rate 0.0001, on "
        "the training drawings of single only; tested on 10 drawings of dataset plant"
    )
    html = home(e, note="n", usd_per_gpu_hour=None)
    assert "LoRA rank 16 of Qwen/Qwen2.5-VL-7B" in html and "Δ against q25_zero." in html
    assert "no cost is estimated" in html


def test_classification_leaderboard_ranks_by_macro_f1():
    def cls(acc, f1, invalid):
        return {"accuracy": acc, "macro_f1": f1, "n": 8, "n_invalid": invalid,
                "invalid_rate": invalid / 8, "per_class": {}}  # fmt: skip

    info = {"task": "classify", "base": "tiny", "family": "qwen3_vl", "datasets": ["sheets"]}
    entries = {
        "zero_shot": Entry("zero_shot", cls(0.5, 0.3, 4), {**info, "tuner": "none"}),
        "lora": Entry("lora", cls(0.75, 0.7, 0), {**info, "tuner": "lora"}),
        "full": Entry("full", cls(0.9, 0.6, 0), {**info, "tuner": "full"}),
    }
    page = leaderboard_page(entries)
    assert "Detection</h2>" not in page and "Classification</h2>" in page
    rows = _rows(page)
    # macro-F1 ranks, not accuracy: lora (0.7) before full (0.6) before zero_shot (0.3)
    assert [rows[n][0] for n in ("lora", "full", "zero_shot")] == ["1", "2", "3"]
    assert rows["lora"][3] == "+0.400" and rows["zero_shot"][6] == "50.0 %"


def test_first_page_fragment_takes_the_page_and_links_every_category():
    html = home(_entries(), usd_per_gpu_hour=1.0, price_source="p")
    assert html.startswith("<div class='drawtune' id='drawtune-home'><style>")
    assert ".prose.max-w-lg:has(#drawtune-home) { max-width: none; }" in html
    for name in CATEGORIES.values():  # javascript: URLs are percent-decoded before they run
        assert f"app.showCategory('{name.replace(' ', '%20')}')" in html
    assert html.count("<table>") == 1  # detection only


def test_workflow_description_includes_the_leaderboard_the_rule_writes(tmp_path, monkeypatch):
    """report/workflow.rst (Snakemake's first page) pulls in the fragment by path; docutils
    reads it relative to the folder `snakemake --report` runs in."""
    from docutils.core import publish_parts

    text = (ROOT / "report" / "workflow.rst").read_text()
    assert f":file: {paths.REPORT}/home.html" in text
    (tmp_path / paths.REPORT).mkdir(parents=True)
    (tmp_path / paths.REPORT / "home.html").write_text("<div id='drawtune-home'>ranked</div>")
    monkeypatch.chdir(tmp_path)
    body = publish_parts(text, writer="html")["html_body"]
    assert "<div id='drawtune-home'>ranked</div>" in body


def test_tables_have_units_and_right_aligned_numbers():
    html = table([Col("model"), Col("time", "min", num=True)], [["a<b", "1.5"]])
    assert "<th class='num'>time<span class='unit'>min</span></th>" in html
    assert "<th>a&lt;b</th><td class='num'>1.5</td>" in html


def test_price_comes_from_the_config_or_the_vertex_profile(tmp_path):
    assert gpu_hour_price(2.5, tmp_path / "none.yaml") == (2.5, "report.usd_per_gpu_hour")
    v = tmp_path / "vertex.yaml"
    v.write_text("machines:\n  train_adapter:\n    machine_type: a2-highgpu-2g\n"
                 "    accelerator_count: 2\n    usd_per_hour: 8.0\n")  # fmt: skip
    price, where = gpu_hour_price(None, v)
    assert price == 4.0 and "a2-highgpu-2g" in where
    assert gpu_hour_price(None, tmp_path / "none.yaml")[0] is None
    shipped = yaml_price = gpu_hour_price(None, ROOT / "profiles/vertex/vertex.yaml")[0]
    assert shipped is not None and yaml_price > 0


# ---------------------------------------------------------------------------- pages
def _model_ctx(tmp_path, **kw):
    return ModelContext(
        name="r8",
        task="detect",
        metrics=_det(0.3, 0.5),
        details=DETAILS,
        info={
            "task": "detect",
            "tuner": "lora",
            "base": "b",
            "family": "qwen3_vl",
            "datasets": ["plant"],
            "epochs": 1,
            "learning_rate": 1e-4,
        },  # fmt: skip
        truth=TRUTH,
        logging=[
            {"loss": 2.0, "learning_rate": 1e-4, "global_step/max_steps": "1/2"},
            {"loss": 1.5, "learning_rate": 5e-5, "global_step/max_steps": "2/2"},
            {"eval_loss": 1.7, "global_step/max_steps": "2/2"},
        ],
        telemetry=[
            {
                "step": 1,
                "elapsed_s": 5.0,
                "device": "cpu",
                "gpus": 1,
                "samples_per_s": 1.0,
                "tokens_per_s": 100.0,
            }
        ],  # fmt: skip
        **kw,
    )


def test_model_page_has_every_section_and_takes_new_ones(tmp_path):
    ctx = _model_ctx(tmp_path)
    html = pages.model_page(ctx)
    titles = re.findall(r"<section id='([^']+)'><h2>", html)
    assert titles == ["overview", "per-class-ap", "per-class-prf", "confusion", "training",
                      "telemetry"]  # fmt: skip
    assert html.count("<img src='data:image/png;base64,") == 4
    # the per-class table: view 2 true, 2 predicted, TP 1, FP 1, FN 1
    assert "<th>view</th><td class='num'>2</td><td class='num'>2</td><td class='num'>1</td>" in html

    def extra(c: ModelContext):
        return Section("Reliability", f"<p>{len(c.details)} drawings</p>")

    def nothing(c):
        return None

    html = pages.model_page(ctx, [*pages.MODEL_SECTIONS, extra, nothing])
    assert "<section id='reliability'><h2>Reliability</h2><p>3 drawings</p>" in html
    untrained = _model_ctx(tmp_path)
    untrained.info = {**untrained.info, "tuner": "none"}
    assert "id='training'" not in pages.model_page(untrained)


def _png(path: Path, size=(200, 100)) -> Path:
    Image.new("RGB", size, "white").save(path)
    return path


def test_gallery_draws_truth_and_predictions_in_their_own_colours(tmp_path):
    m = match_detections(TRUTH, DETAILS)
    a = m.drawings[0]
    png = gallery.overlay_png(_png(tmp_path / "a.png"), a)
    im = Image.open(io.BytesIO(png)).convert("RGB")
    scale = gallery.WIDTH / 200
    assert im.size == (gallery.WIDTH, round(100 * scale) + gallery.BAND)

    def column(x, y0, y1):  # a line of width 2 at x, one pixel either side
        return {im.getpixel((c, y)) for c in (x - 1, x, x + 1) for y in range(y0, y1)}

    y0, y1 = gallery.BAND + int(30 * scale), gallery.BAND + int(55 * scale)
    assert gallery.TRUTH in column(int(10 * scale), y0, y1)  # the found view's left edge
    assert gallery.PRED in column(int(12 * scale), y0, y1)  # its prediction, dashed
    assert gallery.PRED not in column(int(10 * scale), y0, y1)
    assert gallery.TRUTH not in column(int(12 * scale), y0, y1)
    colours = set(im.get_flattened_data())
    assert gallery.BAD in colours  # the red tags: missed, wrong class, false alarm
    assert png == gallery.overlay_png(tmp_path / "a.png", a)  # the same bytes each time


def test_gallery_page_shows_worst_drawings_and_unparsed_answers_as_text(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        _png(tmp_path / name)
    page = gallery.detection_gallery("r8", match_detections(TRUTH, DETAILS), 4, tmp_path)
    assert page.count("<figure>") == 2 and "c.png" not in page
    assert page.index("a.png") < page.index("b.png")
    assert "&lt;script&gt;x&lt;/script&gt; not json" in page and "<script>x" not in page
    assert "<i class='swatch truth'></i>true box" in page
    shown = re.search(r"<img src='[^']+' width='(\d+)'", page).group(1)
    assert int(shown) == gallery.WIDTH  # shown at the size it was drawn for


def test_classification_gallery_lists_wrong_answers(tmp_path):
    _png(tmp_path / "x.png")
    _png(tmp_path / "y.png")
    details = [
        {"image": "x.png", "label": "a", "predicted": "b", "response": "b"},
        {"image": "y.png", "label": "a", "predicted": None, "response": "no idea"},
        {"image": "x.png", "label": "b", "predicted": "b", "response": "b"},
    ]
    page = gallery.classify_gallery("m", details, 5, tmp_path)
    assert "2 of 3 test drawings answered wrong" in page
    assert page.index("y.png") < page.index("x.png")  # no class named comes first
    assert ">no idea</pre>" in page


def test_data_page_counts_boxes_per_class_and_split_and_rejects_by_reason():
    def rec(image, *labels, w=100, h=50):
        boxes = [{"label": lab, "bbox": [0, 0, 10, 5]} for lab in labels]
        return {"image": image, "width": w, "height": h, "boxes": boxes}

    lost = "image file /data/{}.png does not exist"
    ctx = DataContext(
        classes=["view", "note"],
        splits={"train": [rec("a", "view", "view", "note"), rec("b")], "val": [],
                "test": [rec("c", "view")]},
        classify={"sheets": {"train": [{"image": "s", "label": "A4"}], "val": [], "test": []}},
        summaries=[{"dataset": "plant", "read": 7, "converted": 4, "rejected": 3}],
        rejects={"plant": [
            {"file": "ann.json", "record": "images[4]", "field": "file_name",
             "reason": lost.format("x")},
            {"file": "ann.json", "record": "images[5]", "field": "file_name",
             "reason": lost.format("y/z")},
            {"file": "ann.json", "record": "annotations[2]", "field": "bbox",
             "reason": "box [1, 2, 3, 4] lies outside the 640x480 image"},
        ]},
        split_rejects=[{"file": "f", "record": "r", "field": "image",
                        "reason": "duplicate of a.png (images[3] (id 4))"}],
        records={"plant": [{"image": i} for i in "abc"]},
    )  # fmt: skip
    html = pages.data_page(ctx)
    assert "<th>view</th><td class='num'>2</td><td class='num'>0</td><td class='num'>1</td>" \
           "<td class='num'>3</td><td class='num'>1</td>" in html  # fmt: skip
    assert (
        "<th>train</th><td class='num'>2</td><td class='num'>1</td><td class='num'>3</td>" in html
    )
    assert "<td>image file … does not exist</td><td class='num'>2</td>" in html
    assert "box […] lies outside the N image" in html and "duplicate of … (…)" in html
    assert "<h3>sheets</h3>" in html and "<th>A4</th>" in html
    assert html.count("<img ") == 2  # boxes per class, box sizes
    # box side relative to the sheet: sqrt(10 * 5 / (100 * 50)) = 10 %
    assert "10.0 %" in html


def test_reason_kinds_keep_the_words_and_drop_the_particulars():
    assert reason_kind("image file /a/b.png does not exist") == "image file … does not exist"
    assert reason_kind("declared width 640 but the image has 641") == (
        "declared width N but the image has N"
    )
    assert reason_kind("unknown label 'x' (classes: a, b)") == "unknown label … (…)"


def test_compare_page_holds_every_model_and_picture():
    pictures = {
        m: {d: b"png-" + d.encode() for d in ("sheet_1", "sheet_2")} for m in ("base", "r8")
    }
    metrics = {"base": {"map": 0.0, "map50": 0.0}, "r8": {"map": 0.4, "map50": 0.6}}
    page = compare_page(metrics, pictures)
    start = page.index("id='data'>") + len("id='data'>")
    data = json.loads(page[start : page.index("</script>", start)])
    assert data["models"] == ["r8", "base"]  # best first
    assert data["drawings"] == ["sheet_1", "sheet_2"]
    assert data["metrics"]["r8"]["map50"] == 0.6
    assert data["pictures"]["base"]["sheet_2"].startswith("data:image/png;base64,")
