"""Predicted boxes drawn over a drawing for `drawtune predict` (drawtune/serve.py), in the
error gallery's colour and lettering."""

from __future__ import annotations

from PIL import ImageDraw

from .gallery import PRED, font


def draw_predicted(d: ImageDraw.ImageDraw, boxes: list[dict]) -> None:
    """Predicted boxes (pixel ``bbox`` x1, y1, x2, y2), each labelled on a patch of its colour
    at its bottom-left corner."""
    f = font(13)
    for b in boxes:
        x1, y1, x2, y2 = b["bbox"]
        d.rectangle([x1, y1, x2, y2], outline=PRED, width=2)
        left, top, right, bottom = d.textbbox((0, 0), b["label"], font=f)
        w, h = right - left + 6, bottom - top + 4
        y = max(0, y2 - h)
        d.rectangle([x1, y, x1 + w, y + h], fill=PRED)
        d.text((x1 + 3 - left, y + 2 - top), b["label"], fill=(255, 255, 255), font=f)
