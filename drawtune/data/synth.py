"""Deterministic synthetic engineering drawings with COCO annotations.

Each sheet has a border, a title block, optionally a parts table and notes, and 1-4
orthographic views with centre lines, hidden lines and dimension lines, plus optional section
(hatched) and detail (circular) views. Drawing ``i`` of seed ``s`` depends only on ``(s, i)``,
so growing ``--n`` adds sheets without changing the earlier ones.
"""

from __future__ import annotations

import json
import multiprocessing
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CLASSES = ("view", "section_view", "detail_view", "title_block", "table", "note")
_WORDS = ("SHAFT", "FLANGE", "BRACKET", "HOUSING", "COVER", "PLATE", "BOLT", "SPACER", "BUSH")


def _font(size: int):
    return ImageFont.load_default(size=size)


def _text(d: ImageDraw.ImageDraw, xy, s: str, size: int):
    d.text(xy, s, fill=0, font=_font(size))
    x0, y0, x1, y1 = d.textbbox(xy, s, font=_font(size))
    return x0, y0, x1, y1


def _union(*boxes):
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _dim_h(d, x1, x2, y, label, fs):
    d.line([(x1, y), (x2, y)], fill=0, width=1)
    for x, s in ((x1, 1), (x2, -1)):
        d.polygon([(x, y), (x + 5 * s, y - 2), (x + 5 * s, y + 2)], fill=0)
    return _union((x1, y - 3, x2, y + 3), _text(d, ((x1 + x2) // 2 - fs, y - fs - 3), label, fs))


def _dim_v(d, x, y1, y2, label, fs):
    d.line([(x, y1), (x, y2)], fill=0, width=1)
    for y, s in ((y1, 1), (y2, -1)):
        d.polygon([(x, y), (x - 2, y + 5 * s), (x + 2, y + 5 * s)], fill=0)
    return _union((x - 3, y1, x + 3, y2), _text(d, (x + 4, (y1 + y2) // 2 - fs // 2), label, fs))


def _part(d, rng, cell, kind, fs):
    """Draw one view inside ``cell`` (x0, y0, x1, y1); return its box."""
    cx0, cy0, cx1, cy1 = cell
    cw, ch = cx1 - cx0, cy1 - cy0
    w = int(cw * rng.uniform(0.35, 0.6))
    h = int(ch * rng.uniform(0.3, 0.55))
    x0 = cx0 + int((cw - w) * rng.uniform(0.2, 0.5))
    y0 = cy0 + int((ch - h) * rng.uniform(0.2, 0.45))
    x1, y1 = x0 + w, y0 + h
    boxes = []
    if kind == "detail_view":
        r = min(w, h) // 2
        cx, cy = x0 + w // 2, y0 + h // 2
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=0, width=2)
        d.line([(cx - r // 2, cy), (cx + r // 2, cy)], fill=0, width=2)
        d.arc([cx - r // 3, cy - r // 3, cx + r // 3, cy + r // 3], 0, 270, fill=0, width=1)
        boxes.append((cx - r, cy - r, cx + r, cy + r))
        letter = rng.choice("BCDEF")
        boxes.append(_text(d, (cx - r, cy + r + 3), f"DETAIL {letter} (2:1)", fs))
        return _union(*boxes)
    d.rectangle([x0, y0, x1, y1], outline=0, width=2)
    if kind == "section_view":
        step = max(4, w // 10)
        for k in range(-h, w, step):
            a = (x0 + max(k, 0), y0 + max(-k, 0))
            b = (x0 + min(k + h, w), y0 + min(h, w - k))
            d.line([a, b], fill=0, width=1)
        letter = rng.choice("ABC")
        boxes.append(_text(d, (x0, y1 + fs + 8), f"SECTION {letter}-{letter}", fs))
    else:
        # hole with centre lines, and a hidden (dashed) edge
        r = min(w, h) // 5
        cx, cy = x0 + w // 2, y0 + h // 2
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=0, width=1)
        for t in range(x0 - 4, x1 + 4, 8):
            d.line([(t, cy), (min(t + 5, x1 + 4), cy)], fill=0, width=1)
        hy = y0 + h // 4
        for t in range(x0 + 2, x1 - 2, 6):
            d.line([(t, hy), (min(t + 3, x1 - 2), hy)], fill=0, width=1)
    boxes.append((x0, y0, x1, y1))
    boxes.append(_dim_h(d, x0, x1, y1 + 6, str(rng.randint(10, 400)), fs))
    boxes.append(_dim_v(d, x1 + 6, y0, y1, str(rng.randint(10, 300)), fs))
    return _union(*boxes)


def _table(d, rng, x0, y0, rows, col_w, row_h, fs, header):
    cols = len(col_w)
    x1 = x0 + sum(col_w)
    y1 = y0 + rows * row_h
    d.rectangle([x0, y0, x1, y1], outline=0, width=2)
    for r in range(1, rows):
        d.line([(x0, y0 + r * row_h), (x1, y0 + r * row_h)], fill=0, width=1)
    x = x0
    for c in range(cols):
        if c:
            d.line([(x, y0), (x, y1)], fill=0, width=1)
        for r in range(rows):
            word = header[c] if r == 0 else rng.choice(_WORDS)[: max(2, col_w[c] // (fs - 2))]
            d.text((x + 2, y0 + r * row_h + 1), word, fill=0, font=_font(fs))
        x += col_w[c]
    return (x0, y0, x1, y1)


def draw_sheet(
    seed: int, index: int, width: int = 640, height: int | None = None, max_views: int | None = None
):
    """One sheet: ``(PIL image, [(label, [x1, y1, x2, y2]), ...])``, boxes in pixels.

    ``height`` defaults to an A-series landscape sheet (``width / sqrt(2)``); a larger one gives
    a portrait sheet with the same layout rules and the same random choices. ``max_views`` keeps
    at most that many of the sheet's views (of any kind; the others drawn are left out), which
    then share the free area: 1 gives single-view sheets with one large view (a curriculum's
    first stage). The random choices are the same, so other sheets do not change."""
    rng = random.Random(f"drawtune-synth-{seed}-{index}")
    if height is None:
        height = int(round(width / 2**0.5))
    img = Image.new("L", (width, height), 255)
    d = ImageDraw.Draw(img)
    fs = max(8, width // 60)
    m = max(6, width // 60)
    d.rectangle([m, m, width - m, height - m], outline=0, width=2)
    objs = []
    # title block, bottom right
    tw, th = int(width * rng.uniform(0.28, 0.36)), int(height * rng.uniform(0.12, 0.17))
    tb = (width - m - tw, height - m - th, width - m, height - m)
    d.rectangle(tb, outline=0, width=2)
    d.line([(tb[0], tb[1] + th // 2), (tb[2], tb[1] + th // 2)], fill=0, width=1)
    d.line([(tb[0] + tw // 2, tb[1] + th // 2), (tb[0] + tw // 2, tb[3])], fill=0, width=1)
    d.text((tb[0] + 3, tb[1] + 3), f"DRAWTUNE {rng.choice(_WORDS)}", fill=0, font=_font(fs))
    d.text(
        (tb[0] + 3, tb[1] + th // 2 + 3), f"DWG {rng.randint(1000, 9999)}", fill=0, font=_font(fs)
    )
    d.text((tb[0] + tw // 2 + 3, tb[1] + th // 2 + 3), "SCALE 1:1", fill=0, font=_font(fs))
    objs.append(("title_block", tb))
    right_top = m + 4
    if rng.random() < 0.7:  # parts table, top right
        rows = rng.randint(3, 6)
        col_w = [int(width * 0.04), int(width * 0.14), int(width * 0.06)]
        row_h = fs + 4
        x0 = width - m - 4 - sum(col_w)
        objs.append(
            ("table", _table(d, rng, x0, right_top, rows, col_w, row_h, fs, ("NO", "PART", "QTY")))
        )
        right_top += rows * row_h + 6
    if rng.random() < 0.7:  # notes, bottom left
        n = rng.randint(2, 4)
        y = height - m - 4 - (n + 1) * (fs + 3)
        boxes = [_text(d, (m + 6, y), "NOTES:", fs)]
        for k in range(n):
            words = " ".join(rng.choice(_WORDS).lower() for _ in range(rng.randint(2, 4)))
            boxes.append(_text(d, (m + 6, y + (k + 1) * (fs + 3)), f"{k + 1}. {words}", fs))
        objs.append(("note", _union(*boxes)))
    # views in a grid over the free area (left of the table column, above the title block)
    kinds = ["view"] * rng.randint(1, 4)
    if rng.random() < 0.5:
        kinds.append("section_view")
    if rng.random() < 0.4:
        kinds.append("detail_view")
    rng.shuffle(kinds)
    if max_views is not None:
        kinds = kinds[:max_views]
    area = (m + 4, m + 4, int(width * 0.72), tb[1] - fs * 2)
    cols = 3 if len(kinds) > 4 else 2
    rows = (len(kinds) + cols - 1) // cols
    cw = (area[2] - area[0]) // cols
    ch = (area[3] - area[1]) // max(rows, 1)
    for k, kind in enumerate(kinds):
        r, c = divmod(k, cols)
        cell = (area[0] + c * cw, area[1] + r * ch, area[0] + (c + 1) * cw, area[1] + (r + 1) * ch)
        objs.append((kind, _part(d, rng, cell, kind, fs)))
    boxes = [
        (label, [max(0, b[0]), max(0, b[1]), min(width, b[2]), min(height, b[3])])
        for label, b in objs
    ]
    return img, boxes


def _note(d, rng, x, y, fs):
    n = rng.randint(2, 4)
    boxes = [_text(d, (x, y), "NOTES:", fs)]
    for k in range(n):
        words = " ".join(rng.choice(_WORDS).lower() for _ in range(rng.randint(2, 4)))
        boxes.append(_text(d, (x, y + (k + 1) * (fs + 3)), f"{k + 1}. {words}", fs))
    return _union(*boxes)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_large_sheet(seed: int, index: int, width: int, object_scale: float):
    """A large sheet with small objects: ``(PIL image, [(label, box), ...])``.

    The objects have the size they would have on a sheet ``object_scale`` times as wide (its
    font, views, notes, title block and parts table), and the sheet is filled with a grid of
    cells each holding a view, a section, a detail, a note or nothing: many small objects on
    one sheet, the case tiling is for. Deterministic in ``(seed, index, width, object_scale)``.
    """
    rng = random.Random(f"drawtune-synth-large-{seed}-{index}-{object_scale}")
    height = int(round(width / 2**0.5))
    unit = max(128, int(width * object_scale))  # the width of the sheet the objects belong to
    img = Image.new("L", (width, height), 255)
    d = ImageDraw.Draw(img)
    fs = max(8, unit // 60)
    m = max(6, unit // 60)
    d.rectangle([m, m, width - m, height - m], outline=0, width=2)
    objs = []
    tw, th = int(unit * rng.uniform(0.28, 0.36)), int(unit / 2**0.5 * rng.uniform(0.12, 0.17))
    tb = (width - m - tw, height - m - th, width - m, height - m)
    d.rectangle(tb, outline=0, width=2)
    d.line([(tb[0], tb[1] + th // 2), (tb[2], tb[1] + th // 2)], fill=0, width=1)
    d.text((tb[0] + 3, tb[1] + 3), f"DRAWTUNE {rng.choice(_WORDS)}", fill=0, font=_font(fs))
    d.text(
        (tb[0] + 3, tb[1] + th // 2 + 3), f"DWG {rng.randint(1000, 9999)}", fill=0, font=_font(fs)
    )
    objs.append(("title_block", tb))
    taken = [(tb[0] - fs, tb[1] - fs, width, height)]
    if rng.random() < 0.7:
        rows = rng.randint(3, 6)
        col_w = [int(unit * 0.04), int(unit * 0.14), int(unit * 0.06)]
        x0 = width - m - 4 - sum(col_w)
        table = _table(d, rng, x0, m + 4, rows, col_w, fs + 4, fs, ("NO", "PART", "QTY"))
        objs.append(("table", table))
        taken.append((table[0] - fs, 0, width, table[3] + fs))
    cw, ch = int(unit * 0.36), int(unit / 2**0.5 * 0.4)
    for y in range(m + 4, height - m - ch, ch):
        for x in range(m + 4, width - m - cw, cw):
            cell = (x, y, x + cw, y + ch)
            if any(_overlaps(cell, t) for t in taken):
                continue
            r = rng.random()
            if r < 0.3:
                kind = rng.choice(("view", "view", "view", "section_view", "detail_view"))
                objs.append((kind, _part(d, rng, cell, kind, fs)))
            elif r < 0.4:
                objs.append(("note", _note(d, rng, x + fs, y + fs, fs)))
    boxes = [
        (label, [max(0, b[0]), max(0, b[1]), min(width, b[2]), min(height, b[3])])
        for label, b in objs
    ]
    return img, boxes


def _render(job):
    """Draw and save one sheet (runs in a worker process); return its name, size and boxes."""
    out, seed, i, width, object_scale, max_views = job
    if object_scale < 1:
        img, boxes = draw_large_sheet(seed, i, width, object_scale)
    else:
        img, boxes = draw_sheet(seed, i, width, max_views=max_views)
    name = f"sheet_{seed:04d}_{i:05d}.png"
    img.save(Path(out) / "images" / name, optimize=False)
    return name, img.width, img.height, boxes


def write_dataset(
    out: Path,
    n: int,
    seed: int = 0,
    width: int = 640,
    workers: int = 1,
    object_scale: float = 1.0,
    max_views: int | None = None,
) -> dict:
    """Write ``out/images/*.png`` and ``out/annotations.json`` (COCO); return the COCO dict.

    ``object_scale`` below 1 draws large sheets with small objects (:func:`draw_large_sheet`);
    ``max_views`` caps the views of a usual sheet (:func:`draw_sheet`).
    ``workers`` > 1 draws sheets in parallel processes; the output is the same byte for byte."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    cat = {c: i + 1 for i, c in enumerate(CLASSES)}
    coco = {
        "info": {"description": f"drawtune synthetic drawings, seed {seed}"},
        "categories": [{"id": i, "name": c, "supercategory": "drawing"} for c, i in cat.items()],
        "images": [],
        "annotations": [],
    }
    jobs = [(str(out), seed, i, width, object_scale, max_views) for i in range(n)]
    if workers > 1 and n > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            sheets = pool.map(_render, jobs, chunksize=max(1, n // (workers * 8)))
    else:
        sheets = [_render(j) for j in jobs]
    for i, (name, w, h, boxes) in enumerate(sheets):
        coco["images"].append({"id": i + 1, "file_name": f"images/{name}", "width": w, "height": h})
        for label, (x1, y1, x2, y2) in boxes:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": cat[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    (out / "annotations.json").write_text(json.dumps(coco, indent=1, sort_keys=True) + "\n")
    return coco
