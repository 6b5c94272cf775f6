"""image_use: does a detector's answer follow the drawing, measured by per-class counts."""

import pytest

from drawtune.eval.image_use import image_use


def _truth(counts: list[dict[str, int]]) -> dict:
    cats = [{"id": 1, "name": "view"}, {"id": 2, "name": "title_block"}]
    ids = {c["name"]: c["id"] for c in cats}
    images, anns = [], []
    for i, per in enumerate(counts, start=1):
        images.append({"id": i, "file_name": f"images/s{i}.png", "width": 100, "height": 70})
        for name, n in per.items():
            for k in range(n):
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": ids[name],
                             "bbox": [k * 10, 0, 5, 5], "area": 25, "iscrowd": 0})  # fmt: skip
    return {"images": images, "annotations": anns, "categories": cats}


def _detail(i: int, labels: list[str], shift: int = 0) -> dict:
    boxes = [{"label": lab, "bbox": [k * 10 + shift, 0, k * 10 + 5, 5]} for k, lab in
             enumerate(labels)]  # fmt: skip
    return {"image": f"images/s{i}.png", "parsed": True, "boxes": boxes}


COUNTS = [{"view": 1, "title_block": 1}, {"view": 2, "title_block": 1},
          {"view": 2, "title_block": 1}, {"view": 3, "title_block": 1}]  # fmt: skip


def test_a_constant_answer_gains_nothing_over_the_prior():
    truth = _truth(COUNTS)
    same = [_detail(i, ["view", "view", "title_block"]) for i in range(1, 5)]
    r = image_use(same, truth)
    assert r["n_images"] == 4
    assert r["distinct_answers"] == 0.25  # one answer for all four drawings
    assert r["per_class"]["view"] == {"count_exact": 0.5, "prior_exact": 0.5, "gain": 0.0}
    assert r["per_class"]["title_block"]["gain"] == 0.0


def test_answers_that_follow_the_drawing_gain():
    truth = _truth(COUNTS)
    follow = [_detail(i, ["view"] * c["view"] + ["title_block"], shift=i)
              for i, c in enumerate(COUNTS, start=1)]  # fmt: skip
    r = image_use(follow, truth)
    assert r["distinct_answers"] == 1.0
    assert r["per_class"]["view"] == {"count_exact": 1.0, "prior_exact": 0.5, "gain": 0.5}


def test_unparsed_and_missing_answers_count_as_no_boxes():
    truth = _truth(COUNTS)
    details = [{"image": "images/s1.png", "parsed": False, "boxes": []}]
    r = image_use(details, truth)
    assert r["per_class"]["view"]["count_exact"] == 0.0
    assert r["distinct_answers"] == 0.0


def test_a_detail_for_another_drawing_is_an_error():
    with pytest.raises(ValueError, match="images/other.png"):
        image_use([{"image": "images/other.png", "boxes": []}], _truth(COUNTS))
