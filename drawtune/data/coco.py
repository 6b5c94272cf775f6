"""COCO detection files: ``images``, ``annotations`` (``[x, y, w, h]`` boxes) and
``categories``, read into records (``drawtune.data.records``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..jsonio import read_json
from .records import (
    ReadResult,
    Reject,
    Rules,
    check_boxes,
    display_path,
    image_facts,
    make_record,
    prefetch_images,
    resolve_image,
)


def read_coco(
    path: Path, rules: Rules, images_root: Path | None = None, group_key: str | None = None
) -> ReadResult:
    """Read a COCO detection file; file names resolve against its folder or ``images_root``."""
    path = Path(path)
    src = display_path(path)
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(f"{src}: not a COCO file (no 'images' list)")
    root = Path(images_root) if images_root else path.parent
    cats = {c.get("id"): c.get("name") for c in data.get("categories", []) if isinstance(c, dict)}
    anns: dict = {}
    for k, a in enumerate(data.get("annotations", [])):
        anns.setdefault(a.get("image_id") if isinstance(a, dict) else None, []).append((k, a))
    prefetch_images(
        root, [i.get("file_name") for i in data["images"] if isinstance(i, dict)], rules
    )
    out = ReadResult()
    ids = {img.get("id") for img in data["images"] if isinstance(img, dict)}
    for key, items in anns.items():
        if key not in ids:  # annotations no image claims are reported, never dropped silently
            for k, a in items:
                why = "is not an object" if not isinstance(a, dict) else f"image_id {key!r}"
                out.rejects.append(
                    Reject(
                        src, f"annotations[{k}]", "image_id", f"annotation {why} matches no image"
                    ).row()
                )
    for i, img in enumerate(data["images"]):
        rec = f"images[{i}]" + (f" (id {img.get('id')})" if isinstance(img, dict) else "")
        try:
            if not isinstance(img, dict) or "id" not in img:
                raise Reject(src, rec, "id", "image entry without an id")
            image = resolve_image(root, img.get("file_name"), src, rec, "file_name")
            facts = image_facts(image, src, rec, "file_name", rules)
            for key, actual in (("width", facts.width), ("height", facts.height)):
                if key in img and img[key] != actual:
                    raise Reject(
                        src, rec, key, f"declared {key} {img[key]} but the image has {actual}"
                    )
            raw = []
            for k, a in anns.get(img["id"], []):
                fld = f"annotations[{k}]"
                b = a.get("bbox")
                if not isinstance(b, list) or len(b) != 4:
                    raise Reject(src, rec, fld + ".bbox", f"bbox {b!r} is not [x, y, w, h]")
                if a.get("category_id") not in cats:
                    raise Reject(
                        src,
                        rec,
                        fld + ".category_id",
                        f"unknown category_id {a.get('category_id')!r}",
                    )
                if not all(isinstance(v, int | float) for v in b):
                    raise Reject(src, rec, fld + ".bbox", f"bbox {b!r} has a non-number")
                raw.append((fld, cats[a["category_id"]], [b[0], b[1], b[0] + b[2], b[1] + b[3]]))
            boxes = check_boxes(raw, facts, src, rec, rules)
        except Reject as r:
            out.rejects.append(r.row())
            continue
        group = img.get(group_key) if group_key else None
        out.records.append(make_record(src, rec, facts, boxes, group))
    return out
