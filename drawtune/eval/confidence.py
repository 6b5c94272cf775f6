"""Box confidences from the token log-probabilities of an answer.

A Qwen-VL detector writes its boxes as text, token by token; ``swift infer --logprobs true
--top_logprobs N`` (and the OpenAI-compatible server with ``logprobs``) returns, for every token
of the answer, its log-probability and those of the ``N`` most likely tokens at that place, as
``{"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}, ...]}``. The
tokens are laid over the answer's text (:func:`answer_tokens`), and each parsed box
(``drawtune.eval.parse.BoxSpan``) takes the tokens that wrote it:

``objectness``
    the probability of opening the box at all: the tokens of its opening (the ``, {`` after the
    box before it, or its first ``{``), each counted with every top alternative that writes the
    same characters (``{"`` and ``{`` both open a box; ``]`` does not)
``label``
    the probability of its label: the product over the label's tokens
``coords_gmean``, ``coords_min``
    the geometric mean and the minimum of the probabilities of its coordinates' tokens

and a box's score is one of :data:`VARIANTS` of these (``drawtune.eval.calibrate`` measures
them on the validation split).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .parse import BoxSpan, Parsed

# The score of a box, from its probabilities (config key confidence.score).
VARIANTS = {
    "label_coords_gmean": lambda p: p.label * p.coords_gmean,
    "label_coords_min": lambda p: p.label * p.coords_min,
    "objectness": lambda p: p.objectness,
    "joint": lambda p: p.objectness * p.label * p.coords_gmean,
    "none": lambda p: 1.0,
}
DEFAULT_VARIANT = "label_coords_gmean"
NO_SCORES = "none"  # metrics' `scores` when the answers carry no log-probabilities


@dataclass(frozen=True)
class Token:
    """One token of an answer: its characters ``[start, end)`` in the answer's text, its
    log-probability and the top alternatives at its place (``[(text, logprob)]``)."""

    start: int
    end: int
    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class BoxProbs:
    """What the tokens of one box say about it (probabilities in [0, 1])."""

    objectness: float
    label: float
    coords_gmean: float
    coords_min: float
    tokens: tuple[int, int]  # the box's tokens: [first, stop) into the answer's tokens

    def score(self, variant: str) -> float:
        """The box's score under ``variant``, to 6 decimals: the same number ranks the boxes,
        is compared with the threshold and is written out, wherever it is computed."""
        return round(float(VARIANTS[variant](self)), 6)

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: (list(v) if k == "tokens" else round(v, 6)) for k, v in d.items()}


def _field(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def token_entries(logprobs) -> list | None:
    """The per-token entries of ms-swift's ``logprobs`` field (a dict, as in the result JSONL)
    or of an OpenAI client's ``choice.logprobs``; None when there are none."""
    if logprobs is None:
        return None
    content = _field(logprobs, "content")
    return list(content) if content else None


def answer_tokens(response: str | None, logprobs, max_stop_tokens: int = 3) -> list[Token] | None:
    """The answer's tokens placed over ``response``; None without log-probabilities, or when
    the tokens do not spell the answer. ms-swift leaves stop tokens (``<|im_end|>``) out of the
    answer but not out of the tokens, and a template may put a prefix before the first one:
    up to ``max_stop_tokens`` trailing tokens are dropped until the rest ends the answer."""
    entries = token_entries(logprobs)
    if response is None or not entries:
        return None
    texts = [str(_field(e, "token")) for e in entries]
    for drop in range(min(max_stop_tokens, len(texts) - 1) + 1):
        kept = texts[: len(texts) - drop]
        joined = "".join(kept)
        if joined and response.endswith(joined):
            break
    else:
        return None
    out, pos = [], len(response) - len(joined)
    for e, text in zip(entries, kept, strict=False):
        top = tuple(
            (str(_field(t, "token")), float(_field(t, "logprob")))
            for t in (_field(e, "top_logprobs") or ())
        )
        out.append(Token(pos, pos + len(text), text, float(_field(e, "logprob")), top))
        pos += len(text)
    return out


def _overlapping(tokens: list[Token], span: tuple[int, int]) -> list[int]:
    a, b = span
    if b <= a:
        return []
    return [i for i, t in enumerate(tokens) if t.start < b and t.end > a]


def _squeeze(text: str) -> str:
    return "".join(text.split())


def opening_probability(token: Token, span_end: int) -> float:
    """The probability that the answer writes, at ``token``'s place, what ``token`` writes up
    to ``span_end``: the token itself and every top alternative that starts with the same
    characters (whitespace aside); the token alone without top alternatives."""
    p = math.exp(token.logprob)
    if not token.top:
        return p
    want = _squeeze(token.text[: max(0, span_end - token.start)])
    alternatives = dict(token.top)
    alternatives.setdefault(token.text, token.logprob)
    total = sum(
        math.exp(lp) for text, lp in alternatives.items() if _squeeze(text).startswith(want)
    )
    return min(1.0, max(total, p))


def box_probs(span: BoxSpan, tokens: list[Token]) -> BoxProbs:
    """The probabilities of one box from the answer's tokens."""
    opening = _overlapping(tokens, span.opening)
    objectness = math.prod(opening_probability(tokens[i], span.opening[1]) for i in opening)
    label_tokens = _overlapping(tokens, span.label) if span.label else []
    label = math.exp(sum(tokens[i].logprob for i in label_tokens))
    coord_tokens = sorted({i for c in span.coords for i in _overlapping(tokens, c)})
    lps = [tokens[i].logprob for i in coord_tokens]
    gmean = math.exp(sum(lps) / len(lps)) if lps else 1.0
    low = math.exp(min(lps)) if lps else 1.0
    ends = [s[1] for s in (span.label, *span.coords) if s]
    every = _overlapping(tokens, (span.opening[0], max(ends, default=span.opening[1])))
    first, stop = (every[0], every[-1] + 1) if every else (0, 0)
    return BoxProbs(objectness, label, gmean, low, (first, stop))


def answer_probs(parsed: Parsed, response: str | None, logprobs) -> list[BoxProbs] | None:
    """One :class:`BoxProbs` per parsed box; None when the answer carries no log-probabilities
    or its boxes cannot be placed on its tokens."""
    if parsed.spans is None or len(parsed.spans) != len(parsed.boxes):
        return None
    tokens = answer_tokens(response, logprobs)
    if tokens is None:
        return None
    return [box_probs(s, tokens) for s in parsed.spans]


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown box score {variant!r}; expected one of {', '.join(VARIANTS)}")
    return variant
