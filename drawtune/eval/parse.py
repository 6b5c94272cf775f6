"""Robust parsing of Qwen-VL detection answers.

Accepted forms, in the order they are tried:

1. fenced JSON (```json ... ```), closed or cut off;
2. bare JSON anywhere in the text (a list of objects, or one object), with prose around it;
3. a truncated JSON list: every complete ``{...}`` object before the cut is kept;
4. legacy Qwen tokens
   ``<|object_ref_start|>label<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>``.

An object counts when it has four finite numbers under ``bbox_2d`` (or ``bbox``) and a label
under ``label`` (or ``ref``/``category``/``name``). An answer with no list, object or box token
is *unparseable*; ``[]`` is a valid empty answer (a negative drawing).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
_LEGACY = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>)?\s*"
    r"<\|box_start\|>\s*\(\s*(?P<x1>-?[\d.]+)\s*,\s*(?P<y1>-?[\d.]+)\s*\)\s*,\s*"
    r"\(\s*(?P<x2>-?[\d.]+)\s*,\s*(?P<y2>-?[\d.]+)\s*\)\s*<\|box_end\|>",
    re.S,
)
_LABEL_KEYS = ("label", "ref", "category", "name")
_BOX_KEYS = ("bbox_2d", "bbox")


@dataclass
class Parsed:
    """Boxes found in one answer, in the model's coordinate frame."""

    boxes: list[tuple[str, list[float]]] = field(default_factory=list)
    ok: bool = True  # False: nothing interpretable in the answer
    salvaged: bool = False  # True: the JSON was cut off or malformed and objects were recovered


def _box_from(obj) -> tuple[str, list[float]] | None:
    if not isinstance(obj, dict):
        return None
    box = next((obj[k] for k in _BOX_KEYS if k in obj), None)
    label = next((obj[k] for k in _LABEL_KEYS if k in obj), None)
    if not isinstance(box, list | tuple) or len(box) != 4:
        return None
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in vals):
        return None
    return ("" if label is None else str(label).strip(), vals)


def _objects(value) -> list[tuple[str, list[float]]]:
    items = value if isinstance(value, list) else [value]
    return [b for b in (_box_from(o) for o in items) if b is not None]


def _json_values(text: str):
    """Every JSON list or object in ``text``, left to right, outermost first.

    Yields ``(value, broken)``: ``broken`` is True for an object found after a ``[`` that does
    not decode, i.e. an element of a cut-off or malformed list.
    """
    dec = json.JSONDecoder()
    i = 0
    broken = False
    while i < len(text):
        if text[i] in "[{":
            try:
                value, end = dec.raw_decode(text, i)
            except json.JSONDecodeError:
                broken = broken or text[i] == "["
                i += 1
                continue
            yield value, broken and isinstance(value, dict)
            i = end
        else:
            i += 1


def _salvage(text: str) -> list[tuple[str, list[float]]]:
    """Complete ``{...}`` objects from a cut-off or broken list."""
    dec = json.JSONDecoder()
    out = []
    i = 0
    while True:
        j = text.find("{", i)
        if j < 0:
            return out
        try:
            value, end = dec.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        out.extend(_objects(value))
        i = end


def parse_answer(text: str | None) -> Parsed:
    """Parse one model answer; never raises."""
    if not text or not text.strip():
        return Parsed(ok=False)
    fence = _FENCE.search(text)
    body = fence.group(1) if fence else text
    empty_list_seen = False
    for candidate in (body, text) if fence else (text,):
        pieces: list[tuple[str, list[float]]] = []
        for value, broken in _json_values(candidate):
            if broken:
                pieces.extend(_objects(value))
                continue
            if pieces:
                break
            boxes = _objects(value)
            if boxes:
                return Parsed(boxes=boxes)
            empty_list_seen = empty_list_seen or value == []
        if pieces:
            return Parsed(boxes=pieces, salvaged=True)
    if empty_list_seen:
        return Parsed()
    legacy = [
        (
            (m.group("label") or "").strip(),
            [float(m.group(k)) for k in ("x1", "y1", "x2", "y2")],
        )
        for m in _LEGACY.finditer(text)
    ]
    if legacy:
        return Parsed(boxes=legacy)
    salvaged = _salvage(body)
    if salvaged:
        return Parsed(boxes=salvaged, salvaged=True)
    if "[" in body and "]" not in body and "{" not in body:
        # "[" cut off before any object: an empty, truncated list.
        return Parsed(salvaged=True)
    return Parsed(ok=False)
