"""Drawings with their boxes: truth in green, predictions in red."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from ..jsonio import load_jsonl


def draw_predicted(d: ImageDraw.ImageDraw, boxes: list[dict]) -> None:
    """Predicted boxes (pixel ``bbox`` x1, y1, x2, y2) in red, labels at their bottom edge."""
    for b in boxes:
        x1, y1, x2, y2 = b["bbox"]
        d.rectangle([x1, y1, x2, y2], outline=(220, 0, 0), width=2)
        d.text((x1 + 2, max(0, y2 - 12)), b["label"], fill=(220, 0, 0))


def overlays(details_file, truth_file, out_dir, n: int, prefix: str = "") -> None:
    """The first ``n`` test drawings with truth (green) and predicted (red) boxes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = json.loads(Path(truth_file).read_text())
    cats = {c["id"]: c["name"] for c in truth["categories"]}
    details = {d["image"]: d for d in load_jsonl(details_file)}
    for img in truth["images"][:n]:
        im = Image.open(img["file_name"]).convert("RGB")
        d = ImageDraw.Draw(im)
        for a in truth["annotations"]:
            if a["image_id"] == img["id"]:
                x, y, w, h = a["bbox"]
                d.rectangle([x, y, x + w, y + h], outline=(0, 160, 0), width=2)
                d.text((x + 2, y + 2), cats[a["category_id"]], fill=(0, 160, 0))
        draw_predicted(d, details.get(img["file_name"], {}).get("boxes", []))
        im.save(out_dir / (prefix + Path(img["file_name"]).stem + ".png"))
