"""The error gallery: test drawings with their true boxes (blue, solid) and predicted boxes
(orange, dashed), each box labelled, misses and false alarms named on the box, a legend on
every picture, and answers that could not be parsed shown as text."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

from ..data.images import flatten
from ..eval.confusion import DrawingMatch, Matching
from .html import Raw, esc, figure, page

TRUTH = (0, 114, 178)  # Okabe-Ito blue
PRED = (213, 94, 0)  # Okabe-Ito vermillion
BAD = (180, 35, 24)
WIDTH = 960  # CSS pixels a drawing is drawn and shown at
BAND = 30  # the legend band above the drawing
RESPONSE_CHARS = 1200  # of an unparsed answer shown under its drawing


def open_rgb(path) -> Image.Image:
    """A drawing as RGB (transparency on white, as training sees it)."""
    with Image.open(path) as im:
        return flatten(im).convert("RGB")


@cache
def font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, which matplotlib ships: the same letters on every machine."""
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


def _dashed(d: ImageDraw.ImageDraw, box, color, width: int, dash: int = 7, gap: int = 4):
    x1, y1, x2, y2 = box
    for (ax, ay), (bx, by) in (
        ((x1, y1), (x2, y1)),
        ((x2, y1), (x2, y2)),
        ((x2, y2), (x1, y2)),
        ((x1, y2), (x1, y1)),
    ):
        length = max(abs(bx - ax), abs(by - ay))
        t = 0.0
        while t < length:
            e = min(t + dash, length)
            d.line(
                [
                    (ax + (bx - ax) * t / length, ay + (by - ay) * t / length),
                    (ax + (bx - ax) * e / length, ay + (by - ay) * e / length),
                ],
                fill=color,
                width=width,
            )
            t = e + gap


def _tag(d: ImageDraw.ImageDraw, xy, text: str, color, size: tuple[int, int], below=False):
    """A label on a filled patch in the box's colour, kept inside the picture."""
    f = font(13)
    x0, y0, x1, y1 = d.textbbox((0, 0), text, font=f)
    w, h = x1 - x0 + 6, y1 - y0 + 4
    x = min(max(0, xy[0]), max(0, size[0] - w))
    y = xy[1] - h if below else xy[1]
    y = min(max(BAND, y), max(BAND, size[1] - h))
    d.rectangle([x, y, x + w, y + h], fill=color)
    d.text((x + 3 - x0, y + 2 - y0), text, fill=(255, 255, 255), font=f)


def _legend(d: ImageDraw.ImageDraw, width: int, note: str, note_bad: bool) -> None:
    d.rectangle([0, 0, width, BAND - 1], fill=(246, 248, 250))
    d.line([(0, BAND - 1), (width, BAND - 1)], fill=(217, 222, 229))
    f = font(13)
    x = 10
    d.line([(x, BAND // 2), (x + 24, BAND // 2)], fill=TRUTH, width=3)
    d.text((x + 30, 7), "truth", fill=(31, 41, 51), font=f)
    x += 30 + d.textlength("truth", font=f) + 22
    _dashed(d, (x, BAND // 2, x + 24, BAND // 2), PRED, 3)
    d.text((x + 30, 7), "prediction", fill=(31, 41, 51), font=f)
    x += 30 + d.textlength("prediction", font=f) + 22
    d.text((x, 7), note, fill=BAD if note_bad else (95, 107, 122), font=f)


def summary(m: DrawingMatch) -> str:
    """``3 true boxes, 1 missed; 2 predicted, 1 false alarm`` (and an unparsed answer)."""
    s = (
        f"{len(m.truth)} true boxes, {m.misses} missed; "
        f"{len(m.predicted)} predicted, {m.false_alarms} false alarm"
        + ("s" if m.false_alarms != 1 else "")
    )
    return s + ("; answer not parsed" if not m.parsed else "")


def overlay_png(image_path, m: DrawingMatch, width: int = WIDTH) -> bytes:
    """One drawing scaled to ``width`` pixels, lightened, with a legend band and every true
    and predicted box drawn and labelled."""
    src = open_rgb(image_path)
    scale = width / src.width
    im = src.resize((width, max(1, round(src.height * scale))), Image.Resampling.LANCZOS)
    im = Image.blend(im, Image.new("RGB", im.size, "white"), 0.35)
    canvas = Image.new("RGB", (width, im.height + BAND), "white")
    canvas.paste(im, (0, BAND))
    d = ImageDraw.Draw(canvas)
    size = canvas.size

    def xy(b):
        return [b[0] * scale, b[1] * scale + BAND, b[2] * scale, b[3] * scale + BAND]

    for t in m.truth:
        box = xy(t.bbox)
        d.rectangle(box, outline=TRUTH, width=2 if t.found else 3)
        label = t.label if t.found else f"{t.label} · missed"
        _tag(d, (box[0], box[1]), label, TRUTH if t.found else BAD, size)
    for p in m.predicted:
        box = xy(p.bbox)
        _dashed(d, box, PRED, 2)
        if p.correct:
            label = p.label
        elif p.truth is not None:
            label = f"{p.label} · truth {p.truth}"
        else:
            label = f"{p.label} · false alarm"
        _tag(d, (box[0], box[3]), label, PRED if p.correct else BAD, size, below=True)
    _legend(d, width, summary(m), bool(m.errors or not m.parsed))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


LEGEND = Raw(
    "<p class='legend'><span><i class='swatch truth'></i>true box</span>"
    "<span><i class='swatch pred'></i>predicted box</span>"
    "<span>a red label: missed, false alarm, or another class than the truth</span></p>"
)


def detection_gallery(name: str, matching: Matching, n: int, image_root=".") -> str:
    """The page of one detection model: its ``n`` test drawings with the most misses and
    false alarms at IoU 0.5."""
    worst = matching.worst(n)
    total = len(matching.drawings)
    lead = (
        f"The {len(worst)} of {total} test drawings with the most misses and false alarms at "
        f"IoU 0.5 (a prediction of another class than the box it overlaps counts as both)."
    )
    if not worst:
        body = "<p>No test drawing has a miss, a false alarm or an unparsed answer.</p>"
        return page(f"Error gallery: {name}", body, lead)
    parts = [LEGEND, "<div class='gallery'>"]
    for m in worst:
        png = overlay_png(Path(image_root) / m.image, m)
        parts.append(figure(png, Raw(f"<b>{esc(m.image)}</b>: {esc(summary(m))}"), density=1))
        if not m.parsed:
            text = m.response if m.response is not None else "(no answer)"
            cut = text[:RESPONSE_CHARS] + (" …" if len(text) > RESPONSE_CHARS else "")
            parts.append(
                f"<p>The model's answer, which could not be parsed:</p><pre>{esc(cut)}</pre>"
            )
    parts.append("</div>")
    return page(f"Error gallery: {name}", "".join(parts), lead)


def thumbnail_png(image_path, side: int = 320) -> bytes:
    """A drawing scaled to fit ``side`` x ``side`` pixels (landscape and portrait alike)."""
    src = open_rgb(image_path)
    scale = side / max(src.width, src.height)
    size = (max(1, round(src.width * scale)), max(1, round(src.height * scale)))
    buf = io.BytesIO()
    src.resize(size, Image.Resampling.LANCZOS).save(buf, format="PNG")
    return buf.getvalue()


def classify_gallery(name: str, details: list[dict], n: int, image_root=".") -> str:
    """The page of one classification model: ``n`` test drawings it answered wrong (answers
    that name no class first), each with the truth and the answer."""
    wrong = [d for d in details if d["predicted"] != d["label"]]
    wrong.sort(key=lambda d: (d["predicted"] is not None, d["image"]))
    lead = f"{len(wrong)} of {len(details)} test drawings answered wrong"
    lead += f"; the first {n} shown." if len(wrong) > n else "."
    if not wrong:
        return page(f"Error gallery: {name}", "<p>Every test drawing answered right.</p>", lead)
    parts = ["<div class='grid'>"]
    for d in wrong[:n]:
        answer = d["predicted"] if d["predicted"] is not None else "no class"
        cap = Raw(
            f"<b>{esc(d['image'])}</b><br>truth <b>{esc(d['label'])}</b>, answer "
            f"<b class='neg'>{esc(answer)}</b>"
        )
        png = thumbnail_png(Path(image_root) / d["image"])
        answer_text = ""
        if d["predicted"] is None:
            text = d.get("response") or "(no answer)"
            answer_text = f"<pre style='max-width:320px'>{esc(text[:RESPONSE_CHARS])}</pre>"
        parts.append(f"<div>{figure(png, cap, density=1)}{answer_text}</div>")
    parts.append("</div>")
    return page(f"Error gallery: {name}", "".join(parts), lead)
