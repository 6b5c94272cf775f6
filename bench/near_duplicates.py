"""How far apart near-duplicate drawings and different drawings fingerprint (issue 19): the
figures behind ``leakage.max_distance`` (config/README.md, "Near-duplicates and leakage").

For each sheet width, base sheets on one fixed template (tests/support/near_duplicates.py) are
varied as archives vary them, and each variant's fingerprint distance to its sheet is measured;
then every pair of different sheets on that template, and every pair of sheets with templates of
their own (drawtune's synthetic generator). Usage (repository root, inside .venv):

    python bench/near_duplicates.py [--widths 448,1000,1600] [--bases 30] [--others 80]

Writes bench/results/near_duplicates.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

import near_duplicates as nd  # noqa: E402
import numpy as np  # noqa: E402
import pypdfium2 as pdfium  # noqa: E402
from PIL import Image  # noqa: E402

from drawtune.data.leakage import DEFAULT_MAX_DISTANCE, distance, fingerprint  # noqa: E402
from drawtune.data.synth import draw_sheet  # noqa: E402

PDF_DPI = 150  # validation.pdf_dpi's default: how the workflow reads the PDF page
EXPORT_DPI = 200


def _jpeg(im: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def _crop(im: Image.Image, share: float, sides: str) -> Image.Image:
    w, h = im.size
    dx, dy = int(w * share), int(h * share)
    return im.crop(
        (
            dx if "l" in sides else 0,
            dy if "t" in sides else 0,
            w - dx if "r" in sides else w,
            h - dy if "b" in sides else h,
        )
    )


def _pdf_pair(im: Image.Image) -> tuple[Image.Image, Image.Image]:
    """The page as the workflow reads a PDF of the sheet, and the page exported to PNG."""
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "PDF", resolution=float(PDF_DPI))
    doc = pdfium.PdfDocument(buf.getvalue())
    try:
        page = doc[0]
        read = page.render(scale=PDF_DPI / 72).to_pil().convert("RGB")
        export = page.render(scale=EXPORT_DPI / 72).to_pil().convert("L")
    finally:
        doc.close()
    return read, export


VARIANTS = {
    "JPEG re-save (quality 70)": lambda im, k: _jpeg(im),
    "revision stamp A -> B": lambda im, k: nd.sheet(k, "B", im.width)[0],
    "crop 1 % right and bottom": lambda im, k: _crop(im, 0.01, "rb"),
    "crop 2 % right and bottom": lambda im, k: _crop(im, 0.02, "rb"),
    "crop 2 % all sides": lambda im, k: _crop(im, 0.02, "lrtb"),
    "crop 3 % right and bottom": lambda im, k: _crop(im, 0.03, "rb"),
    "crop 5 % left": lambda im, k: _crop(im, 0.05, "l"),
}


def _stats(values: list[int]) -> dict:
    v = np.array(values)
    return {
        "n": int(v.size),
        "min": int(v.min()),
        "median": float(np.median(v)),
        "max": int(v.max()),
        "within_default": int((v <= DEFAULT_MAX_DISTANCE).sum()),
    }


def _pairs(fps: list[str]) -> list[int]:
    return [distance(a, b) for a, b in combinations(fps, 2)]


def measure(width: int, bases: int, others: int) -> dict:
    out = {}
    for name, make in VARIANTS.items():
        ds = []
        for k in range(1, bases + 1):
            im = nd.sheet(k, "A", width)[0]
            ds.append(distance(fingerprint(im), fingerprint(make(im, k))))
        out[name] = _stats(ds)
    ds = []
    for k in range(1, bases + 1):
        read, export = _pdf_pair(nd.sheet(k, "A", width)[0])
        ds.append(distance(fingerprint(read), fingerprint(export)))
    out[f"PDF page ({PDF_DPI} dpi) vs its PNG export ({EXPORT_DPI} dpi)"] = _stats(ds)
    same = [fingerprint(nd.sheet(100 + k, "A", width)[0]) for k in range(others)]
    out["different sheets, one template (all pairs)"] = _stats(_pairs(same))
    own = [fingerprint(draw_sheet(77, k, width)[0]) for k in range(others)]
    out["different sheets, templates of their own (all pairs)"] = _stats(_pairs(own))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--widths", default="448,1000,1600")
    ap.add_argument("--bases", type=int, default=30)
    ap.add_argument("--others", type=int, default=80)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/near_duplicates.json")
    a = ap.parse_args()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "max_distance_default": DEFAULT_MAX_DISTANCE,
        "bits": 1024,
        "widths": {},
    }
    for w in (int(x) for x in a.widths.split(",")):
        result["widths"][str(w)] = measure(w, a.bases, a.others)
        print(json.dumps({w: result["widths"][str(w)]}, indent=1), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
