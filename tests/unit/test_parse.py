"""parse_answer on the messy text real models produce."""

from __future__ import annotations

import pytest

from drawtune.eval.parse import parse_answer

A = '{"bbox_2d": [10, 20, 30, 40], "label": "view"}'
B = '{"bbox_2d": [50, 60, 70, 80], "label": "note"}'
BOX_A = ("view", [10.0, 20.0, 30.0, 40.0])
BOX_B = ("note", [50.0, 60.0, 70.0, 80.0])


def test_fenced_json():
    p = parse_answer(f"Here you go:\n```json\n[{A}, {B}]\n```\nAnything else?")
    assert p.ok and not p.salvaged
    assert p.boxes == [BOX_A, BOX_B]


def test_fence_without_language_tag():
    p = parse_answer(f"```\n[{A}]\n```")
    assert p.ok and p.boxes == [BOX_A]


def test_unclosed_fence_with_complete_list():
    p = parse_answer(f"```json\n[{A}, {B}]\n")
    assert p.ok and not p.salvaged
    assert p.boxes == [BOX_A, BOX_B]


def test_bare_json_with_prose_around():
    p = parse_answer(f"The drawing shows: [{A}, {B}] - two objects in total.")
    assert p.ok and not p.salvaged
    assert p.boxes == [BOX_A, BOX_B]


def test_unrelated_bracket_before_real_list():
    p = parse_answer(f"As in figure [3], the objects are [{A}, {B}].")
    assert p.ok
    assert p.boxes == [BOX_A, BOX_B]


def test_unrelated_object_before_real_list():
    p = parse_answer(f'Settings {{"scale": "1:1"}} then [{A}]')
    assert p.ok and p.boxes == [BOX_A]


def test_single_object_not_in_a_list():
    p = parse_answer(A)
    assert p.ok and p.boxes == [BOX_A]
    p = parse_answer(f"```json\n{A}\n```")
    assert p.ok and p.boxes == [BOX_A]


@pytest.mark.parametrize("fenced", [True, False])
def test_truncated_list_keeps_complete_objects(fenced):
    text = f'[{A}, {B}, {{"bbox_2d": [90, 91'
    p = parse_answer("```json\n" + text if fenced else text)
    assert p.ok
    assert p.salvaged
    assert p.boxes == [BOX_A, BOX_B]


def test_truncated_list_first_object_is_kept():
    # What holds today as well as after a fix: the cut-off object itself never appears.
    p = parse_answer(f'```json\n[{A}, {{"bbox_2d": [90, 91')
    assert p.ok
    assert p.boxes[0] == BOX_A
    assert all(label != "" for label, _ in p.boxes)


def test_list_cut_before_any_object_is_an_empty_salvage():
    p = parse_answer("```json\n[")
    assert p.ok and p.salvaged and p.boxes == []


def test_legacy_box_tokens():
    text = (
        "<|object_ref_start|>view<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>"
        " and <|object_ref_start|> title_block <|object_ref_end|>"
        "<|box_start|>( 5 , 6 ),( 7.5 , 8 )<|box_end|>"
    )
    p = parse_answer(text)
    assert p.ok and not p.salvaged
    assert p.boxes == [("view", [1.0, 2.0, 3.0, 4.0]), ("title_block", [5.0, 6.0, 7.5, 8.0])]


def test_legacy_box_without_label():
    p = parse_answer("<|box_start|>(10,20),(30,40)<|box_end|>")
    assert p.ok and p.boxes == [("", [10.0, 20.0, 30.0, 40.0])]


@pytest.mark.parametrize("text", ["[]", "```json\n[]\n```", "No objects: []", "```json\n[ ]"])
def test_empty_list_is_a_valid_answer(text):
    p = parse_answer(text)
    assert p.ok
    assert p.boxes == []
    assert not p.salvaged


@pytest.mark.parametrize(
    "text",
    [None, "", "   \n\t", "I cannot find any objects.", "```json\n```", "{not json at all}"],
)
def test_nothing_interpretable_is_not_ok(text):
    p = parse_answer(text)
    assert not p.ok
    assert p.boxes == []


def test_alternative_keys():
    text = (
        '[{"bbox": [1, 2, 3, 4], "ref": "view"},'
        ' {"bbox_2d": [5, 6, 7, 8], "category": "note"},'
        ' {"bbox_2d": [9, 10, 11, 12], "name": "table"},'
        ' {"bbox_2d": [13, 14, 15, 16]}]'
    )
    p = parse_answer(text)
    assert p.boxes == [
        ("view", [1.0, 2.0, 3.0, 4.0]),
        ("note", [5.0, 6.0, 7.0, 8.0]),
        ("table", [9.0, 10.0, 11.0, 12.0]),
        ("", [13.0, 14.0, 15.0, 16.0]),
    ]


def test_label_is_stripped_and_numbers_become_floats():
    p = parse_answer('[{"bbox_2d": ["1", 2.5, 3, "4"], "label": "  view \\n"}]')
    assert p.boxes == [("view", [1.0, 2.5, 3.0, 4.0])]


def test_invalid_boxes_are_dropped():
    text = (
        "["
        '{"bbox_2d": [NaN, 2, 3, 4], "label": "nan"},'
        '{"bbox_2d": [1, 2, Infinity, 4], "label": "inf"},'
        '{"bbox_2d": [1, 2, 3], "label": "three"},'
        '{"bbox_2d": [1, 2, 3, 4, 5], "label": "five"},'
        '{"bbox_2d": [1, "x", 3, 4], "label": "text"},'
        '{"bbox_2d": null, "label": "null"},'
        f"{A}"
        "]"
    )
    p = parse_answer(text)
    assert p.ok
    assert p.boxes == [BOX_A]


def test_only_invalid_boxes_is_not_ok():
    p = parse_answer('[{"bbox_2d": [1, 2, 3], "label": "view"}]')
    assert not p.ok
    assert p.boxes == []
