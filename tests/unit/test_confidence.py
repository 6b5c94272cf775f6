"""Box confidences from token log-probabilities (issue 17): the tokens of each parsed box, its
probabilities, COCO mAP ranked by them against pycocotools, the F1-maximising threshold of a
hand-made validation split, and answers without log-probabilities scored as before.

Result rows are written as ``swift infer --logprobs true`` writes them: the answer's tokens by
the real Qwen tokenizer (each id decoded alone, as ms-swift does), ``<|im_end|>`` last."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tokenizers import Tokenizer

from drawtune.coords import ResizeSpec
from drawtune.errors import DrawtuneError
from drawtune.eval.calibrate import calibrate, read_confidence
from drawtune.eval.confidence import (
    Token,
    answer_probs,
    answer_tokens,
    box_probs,
    opening_probability,
)
from drawtune.eval.parse import parse_answer
from drawtune.eval.score import evaluate_answers
from drawtune.eval.threshold import best_threshold, operating_point, reliability
from drawtune.train.tiny_model import tokenizer_files_dir

SPEC = ResizeSpec()
STOP = "<|im_end|>"
CATS = [{"id": 1, "name": "view"}, {"id": 2, "name": "note"}]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_file(str(tokenizer_files_dir() / "tokenizer.json"))


def tokens_of(tok, text: str) -> list[str]:
    ids = tok.encode(text, add_special_tokens=False).ids
    return [tok.decode([i], skip_special_tokens=False) for i in ids]


def obj(label: str, box) -> str:
    return json.dumps({"bbox_2d": list(box), "label": label})


def answer_row(tok, image: str, boxes, probs: list[float], rest: float = 0.99) -> dict:
    """An infer row answering ``boxes`` (``[(label, [x1, y1, x2, y2])]``, 0-1000) whose tokens
    inside the k-th box's object have probability ``probs[k]``, every other token ``rest``."""
    text, regions = "```json\n[", []
    for k, (label, box) in enumerate(boxes):
        if k:
            text += ", "
        start = len(text)
        text += obj(label, box)
        regions.append((start, len(text)))
    text += "]\n```"
    content, pos = [], 0
    for t in [*tokens_of(tok, text), STOP]:
        p = rest
        for (a, b), q in zip(regions, probs, strict=True):
            if a <= pos and pos + len(t) <= b:  # wholly inside the object
                p = q
        content.append({"token": t, "logprob": math.log(p), "bytes": list(t.encode())})
        pos += len(t)
    return {"response": text, "logprobs": {"content": content}, "images": [{"path": image}]}


def truth_of(images: dict) -> dict:
    """COCO truth of 1000x1000 drawings (qwen3_vl's 0-1000 frame is then the pixel frame)."""
    cid = {c["name"]: c["id"] for c in CATS}
    imgs, anns = [], []
    for n, (name, boxes) in enumerate(sorted(images.items()), start=1):
        imgs.append({"id": n, "file_name": name, "width": 1000, "height": 1000})
        for label, (x1, y1, x2, y2) in boxes:
            anns.append(
                {"id": len(anns) + 1, "image_id": n, "category_id": cid[label],
                 "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                 "iscrowd": 0}
            )  # fmt: skip
    return {"images": imgs, "annotations": anns, "categories": CATS}


def single_token_labels(tok):
    """The hand computations below take each label as one token: a box whose tokens all have
    probability q then scores q (label) x q (coordinates' geometric mean) = q**2."""
    for c in CATS:
        text = obj(c["name"], [1, 2, 3, 4])
        assert c["name"] in tokens_of(tok, text), tokens_of(tok, text)


# --------------------------------------------------------------------------- tokens and spans
def test_each_box_keeps_where_it_is_written():
    text = '```json\n[{"bbox_2d": [62, 66, 375, 398], "label": "view"}, ' + (
        '{"bbox_2d": [5, 6, 1000, 998], "label": "title_block"}]\n```'
    )
    p = parse_answer(text)
    cut = [
        (text[slice(*s.opening)], text[slice(*s.label)], [text[slice(*c)] for c in s.coords])
        for s in p.spans
    ]
    assert cut == [
        ("{", "view", ["62", "66", "375", "398"]),
        (", {", "title_block", ["5", "6", "1000", "998"]),
    ]
    # a cut-off list keeps the spans of its complete objects; legacy box tokens have theirs
    text = '[{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6'
    p = parse_answer(text)
    assert p.salvaged and len(p.spans) == 1
    assert text[slice(*p.spans[0].label)] == "a" and p.spans[0].coords[3] == (23, 24)
    text = "<|object_ref_start|>view<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>"
    (s,) = parse_answer(text).spans
    assert text[slice(*s.label)] == "view" and text[slice(*s.opening)] == "<"
    assert [text[slice(*c)] for c in s.coords] == ["1", "2", "3", "4"]


def test_tokens_are_laid_over_the_answer(tok):
    row = answer_row(tok, "a.png", [("view", [1, 2, 3, 4])], [0.5])
    tokens = answer_tokens(row["response"], row["logprobs"])
    assert "".join(t.text for t in tokens) == row["response"]  # <|im_end|> left out
    assert all(row["response"][t.start : t.end] == t.text for t in tokens)
    # a response prefix the template put before the first token
    shifted = answer_tokens("<think>\n\n</think>\n\n" + row["response"], row["logprobs"])
    assert shifted[0].start == len("<think>\n\n</think>\n\n")
    # tokens that do not spell the answer, or none: no tokens (the boxes stay unscored)
    assert answer_tokens(row["response"].replace("view", "note"), row["logprobs"]) is None
    assert answer_tokens(row["response"], None) is None
    assert answer_tokens(row["response"], {"content": []}) is None


def test_box_probabilities_by_hand():
    text = (
        '[{"bbox_2d": [12, 3, 7, 8], "label": "view"}, '
        '{"bbox_2d": [4, 5, 6, 9], "label": "title_block"}]'
    )
    # a hand-made tokenisation; probabilities chosen per token
    pieces = [
        ("[", 0.99), ('{"', 0.8), ("bbox_2d", 1.0), ('": [', 1.0), ("1", 0.5), ("2", 0.8),
        (", ", 1.0), ("3", 0.9), (", ", 1.0), ("7", 1.0), (", ", 1.0), ("8", 1.0),
        ('], "label": "', 1.0), ("view", 0.6), ('"},', 0.7),
        (' {"', 0.95), ("bbox_2d", 1.0), ('": [', 1.0), ("4", 0.4), (", ", 1.0), ("5", 0.9),
        (", ", 1.0), ("6", 1.0), (", ", 1.0), ("9", 1.0),
        ('], "label": "', 1.0), ("title", 0.5), ("_block", 0.9), ('"}]', 1.0),
    ]  # fmt: skip
    assert "".join(t for t, _ in pieces) == text
    logprobs = {"content": [{"token": t, "logprob": math.log(p)} for t, p in pieces]}
    first, second = answer_probs(parse_answer(text), text, logprobs)
    assert first.objectness == pytest.approx(0.8)  # {" opens the first box
    assert first.label == pytest.approx(0.6)
    assert first.coords_gmean == pytest.approx((0.5 * 0.8 * 0.9) ** (1 / 5))  # 5 digit tokens
    assert first.coords_min == pytest.approx(0.5)
    # the second box is opened by the comma after the first one and its own brace
    assert second.objectness == pytest.approx(0.7 * 0.95)
    assert second.label == pytest.approx(0.5 * 0.9)
    assert second.coords_gmean == pytest.approx(0.36**0.25)
    assert second.coords_min == pytest.approx(0.4)
    # the tokens of each box: from its opening to its label
    assert first.tokens == (1, 14) and second.tokens == (14, 28)
    assert first.score("label_coords_gmean") == pytest.approx(0.6 * 0.36 ** (1 / 5))
    assert second.score("label_coords_min") == pytest.approx(0.45 * 0.4)
    assert second.score("objectness") == pytest.approx(0.665)
    assert second.score("joint") == pytest.approx(0.665 * 0.45 * 0.36**0.25)
    assert second.score("none") == 1.0


def test_opening_counts_every_alternative_that_writes_the_same():
    # ' {"' chosen at 0.5; ' {' also opens a box (0.3); ']' ends the list (0.2)
    top = ((' {"', math.log(0.5)), (" {", math.log(0.3)), ("]", math.log(0.2)))
    t = Token(10, 13, ' {"', math.log(0.5), top)
    assert opening_probability(t, 12) == pytest.approx(0.8)
    # '"},' decides that another box follows: '"}' and '"}]' do not
    top = (('"},', math.log(0.6)), ('"}', math.log(0.3)), ('"},\n', math.log(0.05)))
    t = Token(0, 3, '"},', math.log(0.6), top)
    assert opening_probability(t, 3) == pytest.approx(0.65)
    assert opening_probability(Token(0, 3, '"},', math.log(0.6)), 3) == pytest.approx(0.6)


# --------------------------------------------------------------------------- scored mAP
def scored_case(tok):
    """Two drawings; the model writes its wrong boxes first and gives them low probability."""
    single_token_labels(tok)
    truth_boxes = {
        "a.png": [("view", [100, 100, 300, 300]), ("note", [600, 600, 900, 800])],
        "b.png": [("view", [50, 500, 450, 950])],
    }
    answers = {
        "a.png": [
            (("note", [100, 700, 200, 800]), 0.3, False),  # nothing there
            (("view", [100, 100, 300, 300]), 0.95, True),
            (("view", [300, 0, 400, 80]), 0.2, False),  # nothing there
            (("note", [600, 600, 900, 800]), 0.9, True),
        ],
        "b.png": [
            (("view", [500, 50, 950, 450]), 0.4, False),  # wrong place
            (("view", [50, 500, 450, 950]), 0.85, True),
        ],
    }
    rows = [
        answer_row(tok, name, [b for b, _, _ in a], [q for _, q, _ in a])
        for name, a in answers.items()
    ]
    return truth_of(truth_boxes), rows, answers


def coco_stats(truth: dict, dets: list[dict]) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(truth)
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [round(float(s), 6) for s in ev.stats[:3]]


def test_scores_rank_right_boxes_first_and_match_pycocotools(tok):
    truth, rows, answers = scored_case(tok)
    s = evaluate_answers(rows, truth, "qwen3_vl", SPEC, variant="label_coords_gmean")
    m = s.metrics
    assert m["scores"] == "label_coords_gmean" and m["n_unscored"] == 0
    assert m["map"] > m["map_unscored"] and m["map50"] > m["map50_unscored"]
    assert m["map50"] == 1.0  # every right box outranks every wrong one
    # the same scored detections through pycocotools directly: score = q (label) x q (coords)
    ids = {img["file_name"]: img["id"] for img in truth["images"]}
    cid = {c["name"]: c["id"] for c in CATS}
    dets = [
        {"image_id": ids[name], "category_id": cid[label],
         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": q * q}
        for name, a in answers.items()
        for (label, (x1, y1, x2, y2)), q, _ in a
    ]  # fmt: skip
    assert [m["map"], m["map50"], m["map75"]] == coco_stats(truth, dets)
    flat = [{**d, "score": 1.0} for d in dets]
    assert [m["map_unscored"], m["map50_unscored"]] == coco_stats(truth, flat)[:2]
    # every box of the details has its score, its probabilities and its match
    boxes = [b for d in s.details for b in d["boxes"]]
    assert [b["score"] for b in boxes] == pytest.approx(
        [q * q for a in answers.values() for _, q, _ in a]
    )
    assert [b["tp50"] for b in boxes] == [hit for a in answers.values() for _, _, hit in a]
    assert all(
        set(b["p"]) == {"objectness", "label", "coords_gmean", "coords_min", "tokens"}
        for b in boxes
    )
    # the curves: per-class precision-recall, and the reliability of the scores
    view = s.curves["per_class"]["view"]
    assert view["recall"][-1] == 1.0 and view["precision"][-1] == 1.0
    assert sum(b["n"] for b in s.curves["reliability"]["bins"]) == 6


def test_answers_without_logprobs_score_as_before(tok):
    truth, rows, _ = scored_case(tok)
    for r in rows:
        r["logprobs"] = None  # an older result file, or a backend without them
    s = evaluate_answers(rows, truth, "qwen3_vl", SPEC, threshold=0.5)
    m = s.metrics
    assert m["scores"] == "none" and m["threshold"] is None
    assert m["map"] == m["map_unscored"] and m["map50"] == m["map50_unscored"] < 1.0
    assert all("score" not in b for d in s.details for b in d["boxes"])
    assert s.curves["reliability"] is None


def test_one_answer_without_logprobs_unscores_them_all(tok, caplog):
    truth, rows, _ = scored_case(tok)
    rows[1]["logprobs"]["content"][3]["token"] = "x"  # the tokens no longer spell the answer
    m = evaluate_answers(rows, truth, "qwen3_vl", SPEC).metrics
    assert m["scores"] == "none" and m["n_unscored"] == 1
    assert m["map"] == m["map_unscored"]
    assert "b.png" in caplog.text and "no usable log-probabilities" in caplog.text


def test_threshold_keeps_the_boxes_scored_above_it(tok):
    truth, rows, _ = scored_case(tok)
    s = evaluate_answers(rows, truth, "qwen3_vl", SPEC, threshold=0.85**2)
    assert s.metrics["threshold"] == 0.85**2
    assert s.metrics["at_threshold"] == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "n_kept": 3, "n_boxes": 6,
    }  # fmt: skip
    assert [d["kept"] for d in s.details] == [2, 1]
    assert s.metrics["precision50"] == 0.5  # all boxes, as before


# --------------------------------------------------------------------------- the threshold
def test_best_threshold_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2]
    tp = [True, True, False, True, False, False]
    # n_true 5: F1 at 0.9 .333, 0.8 .571, 0.7 .5, 0.6 .667, 0.3 .6, 0.2 .545
    assert best_threshold(scores, tp, 5) == 0.6
    assert operating_point(scores, tp, 5, 0.6) == {
        "precision": 0.75, "recall": 0.6, "f1": 0.666667, "n_kept": 4, "n_boxes": 6,
    }  # fmt: skip
    # equal F1 (0.8 and 0.6 both 2/3 with n_true 3): the higher threshold, fewer boxes
    assert best_threshold([0.9, 0.8, 0.7, 0.6], [True, False, True, True], 4) == 0.6
    assert best_threshold([0.9, 0.8, 0.6, 0.5], [True, True, False, False], 4) == 0.8
    # boxes of one score are kept or dropped together
    assert best_threshold([0.5, 0.5, 0.4], [True, False, True], 2) == 0.4
    # no right box: no threshold
    assert best_threshold([0.9, 0.1], [False, False], 3) is None
    assert best_threshold([], [], 3) is None


def test_reliability_by_hand():
    r = reliability([0.95, 0.91, 0.15, 0.12, 0.18, 1.0], [True, False, False, False, True, True])
    bins = {b["lo"]: b for b in r["bins"] if b["n"]}
    assert set(bins) == {0.1, 0.9}
    assert bins[0.9]["n"] == 3 and bins[0.9]["precision"] == pytest.approx(0.666667)
    assert bins[0.1]["mean_score"] == pytest.approx(0.15)
    # ECE: 3/6 |0.953333 - 0.666667| + 3/6 |0.15 - 0.333333|
    assert r["ece"] == pytest.approx(0.5 * (2.86 / 3 - 2 / 3) + 0.5 * (1 / 3 - 0.15), abs=1e-6)


def test_threshold_of_a_hand_made_validation_split(tok):
    single_token_labels(tok)
    # six boxes over three drawings, four true boxes; q is each box's token probability
    truth = truth_of(
        {
            "v1.png": [("view", [100, 100, 300, 300]), ("note", [500, 500, 700, 700])],
            "v2.png": [("view", [0, 0, 200, 200])],
            "v3.png": [("note", [600, 100, 900, 300])],
        }
    )
    answers = {
        "v1.png": [(("view", [100, 100, 300, 300]), 0.95), (("note", [500, 500, 700, 700]), 0.6)],
        "v2.png": [(("view", [0, 0, 200, 200]), 0.9), (("note", [800, 800, 900, 900]), 0.8)],
        "v3.png": [(("view", [600, 100, 900, 300]), 0.7), (("note", [10, 900, 90, 990]), 0.5)],
    }
    rows = [answer_row(tok, n, [b for b, _ in a], [q for _, q in a]) for n, a in answers.items()]
    # by hand, scores q**2 ranked: .95 hit, .9 hit, .8 miss, .7 miss (wrong class), .6 hit,
    # .5 miss; F1 with 4 true boxes: .4, .667, .571, .5, .6, .545: the threshold is 0.9**2
    c = calibrate(rows, truth, "qwen3_vl", SPEC, score="label_coords_gmean")
    assert c["scores"] == "label_coords_gmean" and c["chosen_by"] == "config"
    assert c["threshold"] == pytest.approx(0.9**2) and c["reason"] is None
    v = c["validation"]
    assert (v["n_images"], v["n_boxes"], v["n_true"]) == (3, 6, 4)
    assert v["variants"]["label_coords_gmean"]["f1"] == 0.666667
    assert set(v["variants"]) == {
        "label_coords_gmean",
        "label_coords_min",
        "objectness",
        "joint",
        "none",
    }
    # with auto, the variant of the highest mAP; the scores of every box are 1.0 under none
    auto = calibrate(rows, truth, "qwen3_vl", SPEC, score="auto")
    best = max(v["variants"].values(), key=lambda x: (x["map"], x["map50"]))
    assert auto["chosen_by"] == "validation map"
    assert v["variants"][auto["scores"]]["map"] == best["map"]


def test_calibration_without_anything_to_measure(tok):
    truth, rows, _ = scored_case(tok)
    none = calibrate(rows, truth, "qwen3_vl", SPEC, score="none")
    assert (none["scores"], none["threshold"]) == ("none", None)
    empty = calibrate([], {"images": [], "annotations": [], "categories": CATS}, "qwen3_vl", SPEC)
    assert empty["threshold"] is None and "no drawings" in empty["reason"]
    for r in rows:
        del r["logprobs"]
    old = calibrate(rows, truth, "qwen3_vl", SPEC)
    assert old["scores"] == "none" and "no log-probabilities" in old["reason"]
    with pytest.raises(ValueError, match="unknown box score"):
        calibrate(rows, truth, "qwen3_vl", SPEC, score="max")


def test_read_confidence_names_a_bad_file(tmp_path):
    assert read_confidence(tmp_path / "none.json") is None
    f = tmp_path / "c.json"
    f.write_text('{"scores": "objectness", "threshold": 0.25}')
    assert read_confidence(f)["threshold"] == 0.25
    f.write_text('{"scores": "best", "threshold": 0.25}')
    with pytest.raises(DrawtuneError, match="c.json.*scores"):
        read_confidence(f)
    f.write_text('{"scores": "objectness", "threshold": "high"}')
    with pytest.raises(DrawtuneError, match="threshold"):
        read_confidence(f)
    f.write_text("{")
    with pytest.raises(DrawtuneError, match="not a confidence file"):
        read_confidence(f)


def test_box_probs_without_tokens_for_a_label():
    text = '[{"bbox_2d": [1, 2, 3, 4]}]'
    tokens = answer_tokens(text, {"content": [{"token": text, "logprob": math.log(0.5)}]})
    (p,) = [box_probs(s, tokens) for s in parse_answer(text).spans]
    assert p.label == 1.0 and p.coords_min == pytest.approx(0.5) and p.objectness == 0.5


# --------------------------------------------------------------------------- tiled models
def test_boxes_merged_across_tiles_keep_their_probabilities(tok, tmp_path):
    from PIL import Image

    from drawtune.data.tiling import Tiling, convert_tiled_split
    from drawtune.eval.calibrate import calibrate_answers
    from drawtune.eval.merge_tiles import TileMerge, sheet_answers, sheet_predictions
    from drawtune.eval.score import scoring_of
    from drawtune.jsonio import dump_jsonl, load_jsonl

    im = Image.new("L", (1000, 700), 255)
    for x in range(0, 1000, 50):
        im.paste(x % 256, (x, 0, x + 10, 700))
    im.save(tmp_path / "big.png")
    truth_boxes = [{"label": "note", "bbox": [250, 50, 450, 150]}]  # across a tile border
    record = {"image": str(tmp_path / "big.png"), "sha256": "ab" * 32, "width": 1000,
              "height": 700, "boxes": truth_boxes}  # fmt: skip
    dump_jsonl([record], tmp_path / "val.jsonl")
    spec = ResizeSpec(min_pixels=3136, max_pixels=200704)
    tiling = Tiling(size=400, overlap=0.25, min_visible=0.5, whole=True)
    out, man = tmp_path / "out.jsonl", tmp_path / "out.manifest.jsonl"
    convert_tiled_split(tmp_path / "val.jsonl", "qwen3_vl", "Detect.", spec, tiling, out, man,
                        tmp_path / "tiles")  # fmt: skip
    rows, manifest = load_jsonl(out), load_jsonl(man)
    # each view answers its true boxes (the note's halves in two tiles) and a wrong view box;
    # the tiles are surer of the note (0.9) than the whole view (0.6), the wrong box is 0.3
    results = []
    for r, m in zip(rows, manifest, strict=True):
        boxes = json.loads(r["messages"][1]["content"].strip("`json\n"))
        answer = [(b["label"], b["bbox_2d"]) for b in boxes] + [("view", [900, 900, 990, 990])]
        q = 0.9 if m["view"] == "tile" else 0.6
        row = answer_row(tok, r["images"][0], answer, [q] * len(boxes) + [0.3])
        results.append({**row, "images": [{"path": r["images"][0]}]})
    (sheet,) = sheet_predictions(results, manifest, "qwen3_vl", spec, TileMerge())
    assert sheet["logprobs"] and sheet["n_unscored_views"] == 0
    note = next(b for b in sheet["boxes"] if b["label"] == "note")
    # the merged note takes the tiles' score, 0.9 x 0.9, and their probabilities
    assert note["score"] == pytest.approx(0.81) and note["p"]["label"] == pytest.approx(0.9)
    truth = {
        "images": [{"id": 1, "file_name": str(tmp_path / "big.png"), "width": 1000, "height": 700}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [250, 50, 200, 100],
                         "area": 20000, "iscrowd": 0}],
        "categories": CATS,
    }  # fmt: skip
    answers = sheet_answers([sheet], truth)
    s = scoring_of(answers, truth, "label_coords_gmean")
    assert s.metrics["scores"] == "label_coords_gmean" and s.metrics["map50"] == 1.0
    c = calibrate_answers(answers, truth, "label_coords_gmean")
    assert c["threshold"] == pytest.approx(0.81)  # the wrong boxes (0.09) fall below it
    s = scoring_of(answers, truth, "label_coords_gmean", c["threshold"])
    assert s.metrics["precision50"] < 1.0 and s.metrics["at_threshold"]["precision"] == 1.0


def test_threshold_page_is_a_report_page(tmp_path):
    """The confidence page is built like every other page of the report: a title (the browser
    test reads each page's h1), a row per model, numbers right-aligned, a dash for no threshold."""
    from drawtune.report.confidence import threshold_table

    confidence = {
        "a": {
            "scores": "label_coords_gmean",
            "chosen_by": "validation F1",
            "threshold": 0.7234,
            "validation": {
                "variants": {
                    "label_coords_gmean": {"map": 0.5, "map50": 0.6, "threshold": 0.7234, "f1": 0.8}
                }
            },
        },
        "b": {"scores": "none", "chosen_by": "-", "threshold": None, "reason": "no boxes <x>"},
    }
    metrics = {"a": {"map": 0.41, "at_threshold": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3,
                                                   "n_kept": 3, "n_boxes": 4}}}  # fmt: skip
    out = tmp_path / "c.html"
    threshold_table(confidence, metrics, out, note="a note")
    page = out.read_text()
    assert "<h1>Box confidences and thresholds</h1>" in page and "a note" in page
    assert "<th>a</th><td>label_coords_gmean</td>" in page
    assert "<td class='num'>0.7234</td><td class='num'>0.800</td><td class='num'>0.410</td>" in page
    assert "<td class='num'>1.000 / 0.500 / 0.667</td><td class='num'>3 of 4</td>" in page
    assert "<th>b</th><td>none</td><td>-</td><td class='num'>–</td>" in page
    assert "no boxes &lt;x&gt;" in page  # escaped
    assert "a: every box score on the validation split" in page and "b: every" not in page
