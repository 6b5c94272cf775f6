"""Reading a classification answer: which one of the closed class list the model named."""

from __future__ import annotations

import json
import re

_PREFIX = re.compile(r"^(?:label|class|category|answer)\s*[:=]\s*", re.I)
_JSON_KEYS = ("label", "class", "category", "answer")
_QUOTES = "\"'`“”‘’"


def _unfence(text: str) -> str:
    """The content of a ``` code fence (a language tag on its first line dropped)."""
    t = text.strip()
    if not t.startswith("```"):
        return t
    t = t[3:]
    if t.endswith("```"):
        t = t[:-3]
    first, nl, rest = t.partition("\n")
    if nl and re.fullmatch(r"[\w-]*", first.strip()):
        t = rest
    return t.strip()


def _clean(text: str) -> str:
    t = _unfence(text)
    for _ in range(3):
        t = _PREFIX.sub("", t).strip().rstrip(".").strip().strip(_QUOTES).strip()
    return t


def _from_json(text: str) -> str | None:
    try:
        v = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if isinstance(v, dict):
        v = next((v[k] for k in _JSON_KEYS if isinstance(v.get(k), str)), None)
    return v if isinstance(v, str) else None


def _exact(text: str, classes) -> str | None:
    if text in classes:
        return text
    hits = {c for c in classes if c.casefold() == text.casefold()}
    return hits.pop() if len(hits) == 1 else None


def parse_class(text: str | None, classes: list[str]) -> str | None:
    """The class an answer names, or None. Accepts the bare name in any case, in quotes or a
    code fence, with a trailing period or a ``Label:`` prefix, JSON (``"x"``,
    ``{"label": "x"}``), and, failing those, a sentence that names exactly one class as a
    whole word (``The drawing is portrait.``); None when it names none or several."""
    if not isinstance(text, str) or not classes:
        return None
    body = _unfence(text)
    for cand in (_from_json(body), _clean(body)):
        if cand is not None:
            hit = _exact(_clean(cand), classes)
            if hit is not None:
                return hit
    # free text: the classes named as whole words, a name inside a longer named one not counted
    spans = []
    for c in classes:
        pat = r"(?<![\w-])" + re.escape(c) + r"(?![\w-])"
        spans += [(m.start(), m.end(), c) for m in re.finditer(pat, body, re.I)]
    named = {
        c
        for s, e, c in spans
        if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)
    }
    return named.pop() if len(named) == 1 else None
