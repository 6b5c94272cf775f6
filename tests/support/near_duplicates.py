"""Near-duplicate drawings, built by the tests themselves (issue 19): one sheet drawn on a fixed
template with a revision stamp, and what archives make of it.

``write_archive(folder)`` writes a COCO dataset whose images are::

    a_revA.png         sheet A (template, views of its own, stamp REV A)
    a_revA.jpg         the same sheet re-saved as a JPEG (quality 70)
    a_revA_crop.png    the same sheet with 2 % cut off its right and bottom edges
    a_revB.png         the same sheet with the revision stamp changed to REV B
    c_revA.png         another sheet on the same template: must NOT be grouped with A
    b_revA.pdf         sheet B as a PDF page (read through pypdfium2 at validation.pdf_dpi)
    b_revA_export.png  that PDF page exported to PNG at 200 dpi (another resolution)
    other_NN.png       unrelated sheets on the same template, so that every split has some

and returns the file names of each group. Boxes are given for the sheets whose pixels match the
original's frame; the crop and the PDF pair are negatives (leakage does not look at boxes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageDraw

from drawtune.data.synth import CLASSES, _font, draw_sheet

WIDTH = 1000
SEED = 21
GROUP_A = ["a_revA.png", "a_revA.jpg", "a_revA_crop.png", "a_revB.png"]
GROUP_B = ["b_revA.pdf", "b_revA_export.png"]
SAME_TEMPLATE = "c_revA.png"


def _template_parts(width: int) -> Image.Image:
    """The sheet every drawing is drawn on: border, a fixed title block and parts table."""
    return draw_sheet(SEED, 0, width)[0]


def sheet(index: int, rev: str = "A", width: int = WIDTH) -> tuple[Image.Image, list]:
    """Sheet ``index`` on the fixed template (its title block and parts table pasted over the
    generator's), with a revision stamp ``REV <rev>`` in the title block."""
    im, boxes = draw_sheet(SEED, index, width)
    im = im.copy()
    base = _template_parts(width)
    w, h = im.size
    for box in ((int(w * 0.6), int(h * 0.78), w, h), (int(w * 0.7), 0, w, int(h * 0.35))):
        im.paste(base.crop(box), box[:2])
    d = ImageDraw.Draw(im)
    fs = max(8, w // 60)
    x, y = int(w * 0.70), int(h * 0.93)
    d.rectangle((x, y, x + 5 * fs, y + fs + 2), fill=255)
    d.text((x, y), f"REV {rev}", fill=0, font=_font(fs))
    keep = [(label, b) for label, b in boxes if b[2] < w * 0.6]
    return im, keep


def _pdf_page(im: Image.Image, path: Path, dpi: float = 150.0) -> None:
    im.convert("RGB").save(path, "PDF", resolution=dpi)


def _export_png(pdf: Path, out: Path, dpi: int = 200) -> None:
    doc = pdfium.PdfDocument(str(pdf))
    try:
        doc[0].render(scale=dpi / 72).to_pil().convert("L").save(out)
    finally:
        doc.close()


def revision(index: int, rev: str, out: Path) -> Path:
    """Sheet ``index`` with revision ``rev`` written to ``out`` (a later near-duplicate)."""
    sheet(index, rev)[0].save(out)
    return out


def write_archive(folder: Path, n_others: int = 14) -> dict:
    """The dataset above under ``folder`` (``annotations.json`` and ``images/``); returns
    ``{"a": [...], "b": [...], "c": name, "others": [...]}`` (file names under images/)."""
    folder = Path(folder)
    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    entries = []  # (file name, image for its size or None, boxes)
    a, a_boxes = sheet(1, "A")
    a.save(img_dir / "a_revA.png")
    entries.append(("a_revA.png", a, a_boxes))
    a.convert("RGB").save(img_dir / "a_revA.jpg", quality=70)
    entries.append(("a_revA.jpg", a, a_boxes))
    w, h = a.size
    crop = a.crop((0, 0, w - int(w * 0.02), h - int(h * 0.02)))
    crop.save(img_dir / "a_revA_crop.png")
    entries.append(("a_revA_crop.png", crop, []))
    b_rev, _ = sheet(1, "B")
    b_rev.save(img_dir / "a_revB.png")
    entries.append(("a_revB.png", b_rev, a_boxes))
    c, c_boxes = sheet(2, "A")
    c.save(img_dir / SAME_TEMPLATE)
    entries.append((SAME_TEMPLATE, c, c_boxes))
    b, _ = sheet(3, "A")
    _pdf_page(b, img_dir / "b_revA.pdf")
    entries.append(("b_revA.pdf", None, []))
    _export_png(img_dir / "b_revA.pdf", img_dir / "b_revA_export.png")
    entries.append(("b_revA_export.png", None, []))
    others = []
    for k in range(n_others):
        name = f"other_{k:02d}.png"
        im, boxes = sheet(10 + k, "A")
        im.save(img_dir / name)
        entries.append((name, im, boxes))
        others.append(name)
    write_coco(folder, entries)
    return {"a": list(GROUP_A), "b": list(GROUP_B), "c": SAME_TEMPLATE, "others": others}


def write_coco(folder: Path, entries: list) -> None:
    """``annotations.json`` for ``entries`` of (file name, image or None, boxes)."""
    cat = {c: i + 1 for i, c in enumerate(CLASSES)}
    coco = {
        "categories": [{"id": i, "name": c} for c, i in cat.items()],
        "images": [],
        "annotations": [],
    }
    for i, (name, im, boxes) in enumerate(entries, start=1):
        entry = {"id": i, "file_name": f"images/{name}"}
        if im is not None:
            entry.update(width=im.width, height=im.height)
        coco["images"].append(entry)
        for label, (x1, y1, x2, y2) in boxes:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i,
                    "category_id": cat[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )
    (Path(folder) / "annotations.json").write_text(json.dumps(coco, indent=1))


def add_image(folder: Path, name: str) -> None:
    """Add an image already written under ``folder/images`` to the dataset, as a negative."""
    path = Path(folder) / "annotations.json"
    coco = json.loads(path.read_text())
    coco["images"].append(
        {"id": max(i["id"] for i in coco["images"]) + 1, "file_name": f"images/{name}"}
    )
    path.write_text(json.dumps(coco, indent=1))
