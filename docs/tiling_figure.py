"""Draw docs/tiling.png, the picture of tiling in config/README.md: a large synthetic sheet with
small objects, its tiles as the workflow cuts them (drawtune.data.tiling, sahi's slicing), the
area tiles share, and one box across a tile border clipped into both tiles.

    .venv/bin/python docs/tiling_figure.py          # rewrites docs/tiling.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from drawtune.coords import ResizeSpec
from drawtune.data.synth import draw_large_sheet
from drawtune.data.tiling import Tiling, sheet_views, view_boxes

OUT = Path(__file__).resolve().parent / "tiling.png"
WIDTH, OBJECT_SCALE, INDEX = 1200, 0.4, 0
TILING = Tiling(size=480, overlap=0.2, min_visible=0.3, whole=True)
COLOURS = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
]


def crossing_box(boxes, tiles):
    """The largest object across a tile border that two tiles or more hold, one of them clipped
    (with the overlap larger than an object, a neighbour holds it whole)."""
    found = []
    for label, box in boxes:
        parts = [t for t in tiles if view_boxes([{"label": label, "bbox": box}], t, 0.3)]
        inside = [t for t in parts if view_boxes([{"label": label, "bbox": box}], t, 1.0)]
        if len(parts) >= 2 and len(inside) < len(parts):
            found.append(((box[2] - box[0]) * (box[3] - box[1]), label, box, parts))
    if found:
        _, label, box, parts = max(found, key=lambda f: f[0])
        return label, box, parts
    raise SystemExit("no box crosses a tile border on this sheet")


def main() -> None:
    sheet, boxes = draw_large_sheet(0, INDEX, WIDTH, OBJECT_SCALE)
    w, h = sheet.size
    views = sheet_views(w, h, TILING, "qwen3_vl", ResizeSpec(max_pixels=200704))
    tiles = [v for v in views if v.kind == "tile"]
    im = Image.new("RGB", (w, h + 110), "white")
    im.paste(sheet.convert("RGB").point(lambda v: 255 - (255 - v) // 2))  # the sheet, faded
    # shared area: covered by two or more tiles
    cover = np.zeros((h, w), dtype=np.uint8)
    for t in tiles:
        x1, y1, x2, y2 = t.crop
        cover[y1:y2, x1:x2] += 1
    shade = Image.new("RGB", (w, h), (255, 220, 120))
    mask = Image.fromarray(np.where(cover >= 2, 90, 0).astype(np.uint8))
    im.paste(shade, (0, 0), mask)
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=18)
    for k, t in enumerate(tiles):
        x1, y1, x2, y2 = t.crop
        inset = 2 + 3 * (k % 3)
        d.rectangle([x1 + inset, y1 + inset, x2 - inset, y2 - inset], outline=COLOURS[k], width=4)
        d.text((x1 + 10, y1 + 8), f"tile {k + 1}  offset {t.offset}", fill=COLOURS[k], font=font)
    label, box, parts = crossing_box(boxes, tiles)
    for t in parts:
        (cut,) = view_boxes([{"label": label, "bbox": box}], t, 0.3)
        x1, y1, x2, y2 = t.to_sheet(cut["bbox"])
        d.rectangle([x1, y1, x2, y2], outline=COLOURS[tiles.index(t)], width=5)
    d.rectangle([box[0] - 6, box[1] - 6, box[2] + 6, box[3] + 6], outline=(220, 0, 0), width=3)
    lines = [
        f"{w} x {h} sheet, {TILING.size}-px tiles sharing at least {TILING.overlap:.0%} of their "
        f"side (sahi's slicing): {len(tiles)} tiles + the whole sheet downscaled.",
        "Shaded: seen by two tiles or more. Red: a box across a tile border; coloured: its",
        "parts as the tiles hold them (clipped, or whole), merged back into the red box.",
    ]
    for k, line in enumerate(lines):
        d.text((12, h + 10 + 32 * k), line, fill="black", font=font)
    im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.LANCZOS)
    im.quantize(colors=64).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
