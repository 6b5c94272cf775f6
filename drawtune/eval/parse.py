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

Each box also keeps where in the answer it was written (:class:`BoxSpan`): the characters that
open it, its label and its four numbers, so that the tokens that produced it can be found
(``drawtune.eval.confidence``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from json.decoder import WHITESPACE

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
_LEGACY = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>)?\s*"
    r"<\|box_start\|>\s*\(\s*(?P<x1>-?[\d.]+)\s*,\s*(?P<y1>-?[\d.]+)\s*\)\s*,\s*"
    r"\(\s*(?P<x2>-?[\d.]+)\s*,\s*(?P<y2>-?[\d.]+)\s*\)\s*<\|box_end\|>",
    re.S,
)
_LABEL_KEYS = ("label", "ref", "category", "name")
_BOX_KEYS = ("bbox_2d", "bbox")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class BoxSpan:
    """Where one box is written in the answer, as ``[start, end)`` character offsets.

    ``opening``: from the end of the box before it (or from its own first character, for the
    first box) to its first character included: the separator and brace (``, {``) or legacy
    token that decide that one more box follows. ``label``: the label's text (None without a
    label). ``coords``: the four numbers."""

    opening: tuple[int, int]
    label: tuple[int, int] | None
    coords: tuple[tuple[int, int], ...]


@dataclass
class Parsed:
    """Boxes found in one answer, in the model's coordinate frame."""

    boxes: list[tuple[str, list[float]]] = field(default_factory=list)
    ok: bool = True  # False: nothing interpretable in the answer
    salvaged: bool = False  # True: the JSON was cut off or malformed and objects were recovered
    # one per box, where it is written; None when the boxes could not be located in the text
    spans: list[BoxSpan] | None = None


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


def _ws(text: str, i: int) -> int:
    return WHITESPACE.match(text, i).end()


def _members(text: str, start: int) -> dict[str, tuple[int, int]]:
    """``key: (value start, value end)`` of the object whose ``{`` is at ``start`` (the last
    of a repeated key, as ``json`` keeps it)."""
    out = {}
    i = _ws(text, start + 1)
    while i < len(text) and text[i] != "}":
        key, i = _DECODER.raw_decode(text, i)
        i = _ws(text, _ws(text, i) + 1)  # past the ':'
        _, end = _DECODER.raw_decode(text, i)
        out[key] = (i, end)
        i = _ws(text, end)
        if text[i] == ",":
            i = _ws(text, i + 1)
    return out


def _elements(text: str, start: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each element of the list whose ``[`` is at ``start``."""
    out = []
    i = _ws(text, start + 1)
    while i < len(text) and text[i] != "]":
        _, end = _DECODER.raw_decode(text, i)
        out.append((i, end))
        i = _ws(text, end)
        if text[i] == ",":
            i = _ws(text, i + 1)
    return out


def _span_of(text: str, start: int, after: int | None) -> BoxSpan:
    """The spans of the box object at ``start``; ``after``: the end of the box before it."""
    members = _members(text, start)
    box_key = next(k for k in _BOX_KEYS if k in members)
    coords = tuple(_elements(text, members[box_key][0]))
    label_key = next((k for k in _LABEL_KEYS if k in members), None)
    label = None
    if label_key is not None:
        a, b = members[label_key]
        label = (a + 1, b - 1) if text[a] == '"' else (a, b)
    return BoxSpan((start if after is None else after, start + 1), label, coords)


def _objects_in(text: str, start: int, end: int) -> list[tuple[tuple[str, list[float]], int]]:
    """The box objects of the JSON value at ``[start, end)``, each with the offset of its
    ``{``, outermost first and left to right (objects nested in another are skipped)."""
    found = []
    i = start
    while True:
        j = text.find("{", i, end)
        if j < 0:
            return found
        try:
            value, stop = _DECODER.raw_decode(text, j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        box = _box_from(value)
        if box is not None:
            found.append((box, j))
        i = stop


def _boxes(value, text: str, start: int, end: int) -> list[tuple[tuple[str, list[float]], int]]:
    """The boxes of a decoded value with the offsets of their objects; offsets are None
    when the objects found in the text are not the boxes of the value."""
    items = value if isinstance(value, list) else [value]
    boxes = [b for b in (_box_from(o) for o in items) if b is not None]
    located = _objects_in(text, start, end)
    if [b for b, _ in located] == boxes:
        return located
    return [(b, None) for b in boxes]


def _parsed(found: list, text: str, salvaged: bool = False) -> Parsed:
    """A Parsed of ``[(box, offset of its object)]`` with the spans of every box."""
    spans: list[BoxSpan] | None = []
    after = None
    for _, start in found:
        if start is None:
            spans = None
            break
        span = _span_of(text, start, after)
        spans.append(span)
        after = _DECODER.raw_decode(text, start)[1]
    return Parsed(boxes=[b for b, _ in found], salvaged=salvaged, spans=spans)


def _json_values(text: str, start: int = 0, end: int | None = None):
    """Every JSON list or object in ``text[start:end]``, left to right, outermost first.

    Yields ``(value, broken, start, end)``: ``broken`` is True for an object found after a
    ``[`` that does not decode, i.e. an element of a cut-off or malformed list.
    """
    end = len(text) if end is None else end
    i = start
    broken = False
    while i < end:
        if text[i] in "[{":
            try:
                value, stop = _DECODER.raw_decode(text[:end], i)
            except json.JSONDecodeError:
                broken = broken or text[i] == "["
                i += 1
                continue
            yield value, broken and isinstance(value, dict), i, stop
            i = stop
        else:
            i += 1


def _salvage(text: str, start: int, end: int) -> list:
    """Complete ``{...}`` objects from a cut-off or broken list, with their offsets."""
    out = []
    i = start
    while True:
        j = text.find("{", i, end)
        if j < 0:
            return out
        try:
            value, stop = _DECODER.raw_decode(text[:end], j)
        except json.JSONDecodeError:
            i = j + 1
            continue
        out.extend(_boxes(value, text, j, stop))
        i = stop


def _legacy(text: str) -> Parsed | None:
    boxes, spans = [], []
    after = None
    for m in _LEGACY.finditer(text):
        first = _ws(text, m.start())
        label = m.span("label") if m.group("label") is not None else None
        coords = tuple(m.span(k) for k in ("x1", "y1", "x2", "y2"))
        spans.append(BoxSpan((first if after is None else after, first + 1), label, coords))
        after = m.end()
        boxes.append(
            (
                (m.group("label") or "").strip(),
                [float(m.group(k)) for k in ("x1", "y1", "x2", "y2")],
            )
        )
    return Parsed(boxes=boxes, spans=spans) if boxes else None


def parse_answer(text: str | None) -> Parsed:
    """Parse one model answer; never raises."""
    if not text or not text.strip():
        return Parsed(ok=False)
    fence = _FENCE.search(text)
    body = fence.span(1) if fence else (0, len(text))
    empty_list_seen = False
    for a, b in (body, (0, len(text))) if fence else ((0, len(text)),):
        pieces: list = []
        for value, broken, start, stop in _json_values(text, a, b):
            if broken:
                pieces.extend(_boxes(value, text, start, stop))
                continue
            if pieces:
                break
            boxes = _boxes(value, text, start, stop)
            if boxes:
                return _parsed(boxes, text)
            empty_list_seen = empty_list_seen or value == []
        if pieces:
            return _parsed(pieces, text, salvaged=True)
    if empty_list_seen:
        return Parsed(spans=[])
    legacy = _legacy(text)
    if legacy:
        return legacy
    salvaged = _salvage(text, *body)
    if salvaged:
        return _parsed(salvaged, text, salvaged=True)
    inner = text[body[0] : body[1]]
    if "[" in inner and "]" not in inner and "{" not in inner:
        # "[" cut off before any object: an empty, truncated list.
        return Parsed(salvaged=True, spans=[])
    return Parsed(ok=False, spans=[])
