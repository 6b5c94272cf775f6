"""Synthetic classification data: drawing sheets labelled by orientation (landscape or
portrait), drawn by ``drawtune.data.synth``, listed in a CSV as ``format: csv`` reads it."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

from .synth import draw_sheet

SYNTH_CLASSES = ("landscape", "portrait")


def synth_label(seed: int, index: int) -> str:
    """Orientation of synthetic sheet ``index``: each pair of sheets (2k, 2k+1) holds one
    landscape and one portrait sheet, in an order drawn from ``(seed, k)``; so both classes
    are present from two sheets on and sheet ``i`` depends only on ``(seed, i)``."""
    first = random.Random(f"drawtune-classify-{seed}-{index // 2}").random() < 0.5
    return SYNTH_CLASSES[(index % 2) ^ int(first)]


def synth_classify(n: int, seed: int, width: int, images_dir, csv_path) -> None:
    """Write ``n`` synthetic sheets (``drawtune.data.synth.draw_sheet``) as PNGs into ``images_dir``
    and ``csv_path`` (header ``image,label``, paths relative to the CSV's folder), labelled by
    sheet orientation (``synth_label``): landscape sheets are ``width`` x ``width/sqrt(2)``,
    portrait ones the transpose, both with the title block bottom right. Same inputs give
    the same bytes."""
    images_dir, csv_path = Path(images_dir), Path(csv_path)
    base = os.path.abspath(csv_path.parent)
    where = os.path.abspath(images_dir)
    if os.path.commonpath([base, where]) != base:
        raise ValueError(f"{images_dir} must lie inside the CSV's folder {csv_path.parent}")
    images_dir.mkdir(parents=True, exist_ok=True)
    short = int(round(width / 2**0.5))
    rows = [("image", "label")]
    for i in range(n):
        label = synth_label(seed, i)
        if label == "portrait":
            img, _ = draw_sheet(seed, i, short, height=width)
        else:
            img, _ = draw_sheet(seed, i, width)
        name = f"sheet_{seed:04d}_{i:05d}.png"
        img.save(images_dir / name, optimize=False)
        rel = Path(os.path.relpath(images_dir / name, csv_path.parent)).as_posix()
        rows.append((rel, label))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(buf.getvalue(), encoding="utf-8", newline="")
