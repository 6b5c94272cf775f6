"""COCO detection files: ``images``, ``annotations`` (``[x, y, w, h]`` boxes) and
``categories``, read into records (``drawtune.data.records``).

The file's structure is checked before any record is built: the three top-level lists must be
there (a misspelled key such as ``annotation`` is named, never read as a file of negatives);
each entry and each value used is checked for its JSON type, and an entry of the wrong shape
rejects only the record it belongs to. Two images with one ``id`` are both rejected: their
annotations cannot be told apart.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import InputError
from ..jsonio import read_json
from .records import (
    ReadResult,
    Reject,
    Rules,
    check_boxes,
    display_path,
    expect,
    image_facts,
    json_type,
    make_record,
    prefetch_images,
    resolve_image,
)

TOP_LEVEL = ("images", "annotations", "categories")
KNOWN_KEYS = (*TOP_LEVEL, "info", "licenses")


def _check_top_level(data, src: str) -> None:
    if not isinstance(data, dict):
        raise InputError(f"{src}: not a COCO file (the top level is {json_type(data)})")
    for key in sorted(set(data) - set(KNOWN_KEYS)):
        near = difflib.get_close_matches(key.lower(), TOP_LEVEL, n=1, cutoff=0.75)
        if near and near[0] not in data:
            raise InputError(
                f"{src}: unknown top-level key {key!r}; did you mean {near[0]!r}? "
                f"(a COCO file has {', '.join(TOP_LEVEL)})"
            )
    for key in TOP_LEVEL:
        if key not in data:
            raise InputError(
                f"{src}: no {key!r} list; a COCO file has {', '.join(TOP_LEVEL)} "
                '(a file of negative drawings has "annotations": [])'
            )
        if not isinstance(data[key], list):
            raise InputError(f"{src}: {key!r} is {json_type(data[key])}, expected a list")


def _categories(data: dict, src: str, out: ReadResult) -> dict:
    """id -> name, or id -> a Reject reason when the category entry is unusable."""
    cats: dict = {}
    for k, c in enumerate(data["categories"]):
        rec = f"categories[{k}]"
        try:
            expect(c, "object", src, rec, "")
            cid = expect(c.get("id"), "id", src, rec, "id")
            name = expect(c.get("name"), "string", src, rec, "name")
        except Reject as r:
            out.rejects.append(r.row())
            usable_id = isinstance(c, dict) and isinstance(c.get("id"), int | str)
            if usable_id and not isinstance(c["id"], bool):  # True would stand for id 1
                cats[c["id"]] = Reject("", "", "", f"category {rec} is unusable: {r.reason}")
            continue
        if cid in cats and cats[cid] != name:
            cats[cid] = Reject("", "", "", f"category id {cid!r} is given twice with two names")
        else:
            cats[cid] = name
    return cats


def _annotations(data: dict, src: str, ids: set, out: ReadResult) -> dict:
    """image id -> [(index, annotation)]; entries no image can claim are rejected here."""
    anns: dict = {}
    for k, a in enumerate(data["annotations"]):
        rec = f"annotations[{k}]"
        try:
            expect(a, "object", src, rec, "")
            key = expect(a.get("image_id"), "id", src, rec, "image_id")
            if key not in ids:
                raise Reject(src, rec, "image_id", f"image_id {key!r} matches no image")
        except Reject as r:  # reported, never dropped silently
            out.rejects.append(r.row())
            continue
        anns.setdefault(key, []).append((k, a))
    return anns


def _image_ids(data: dict) -> dict:
    """id -> indices of the image entries that claim it (valid ids only)."""
    claims: dict = {}
    for i, img in enumerate(data["images"]):
        if isinstance(img, dict):
            v = img.get("id")
            if isinstance(v, int | str) and not isinstance(v, bool):
                claims.setdefault(v, []).append(i)
    return claims


def _raw_boxes(items, cats: dict, src, rec) -> list:
    raw = []
    for k, a in items:
        fld = f"annotations[{k}]"
        b = expect(a.get("bbox"), "list", src, rec, fld + ".bbox")
        if len(b) != 4:
            raise Reject(src, rec, fld + ".bbox", f"bbox {b!r:.60} is not [x, y, w, h]")
        cid = a.get("category_id")
        if not isinstance(cid, int | str) or isinstance(cid, bool) or cid not in cats:
            raise Reject(src, rec, fld + ".category_id", f"unknown category_id {cid!r:.60}")
        if isinstance(cats[cid], Reject):
            raise Reject(src, rec, fld + ".category_id", cats[cid].reason)
        for j, v in enumerate(b):
            expect(v, "number", src, rec, f"{fld}.bbox[{j}]")
        raw.append((fld, cats[cid], [b[0], b[1], b[0] + b[2], b[1] + b[3]]))
    return raw


def read_coco(
    path: Path, rules: Rules, images_root: Path | None = None, group_key: str | None = None
) -> ReadResult:
    """Read a COCO detection file; file names resolve against its folder or ``images_root``."""
    path = Path(path)
    src = display_path(path)
    data = read_json(path)
    _check_top_level(data, src)
    root = Path(images_root) if images_root else path.parent
    out = ReadResult()
    cats = _categories(data, src, out)
    claims = _image_ids(data)
    anns = _annotations(data, src, set(claims), out)
    prefetch_images(
        root,
        [i.get("file_name") for i in data["images"] if isinstance(i, dict)],
        rules,
    )
    for i, img in enumerate(data["images"]):
        rec = f"images[{i}]"
        try:
            expect(img, "object", src, rec, "")
            rec += f" (id {img.get('id')!r:.40})"
            iid = expect(img.get("id"), "id", src, rec, "id")
            others = [f"images[{j}]" for j in claims[iid] if j != i]
            if others:
                raise Reject(
                    src,
                    rec,
                    "id",
                    f"image id {iid!r} is also the id of {', '.join(others)}: its annotations "
                    "cannot be told apart",
                )
            image = resolve_image(root, img.get("file_name"), src, rec, "file_name")
            facts = image_facts(image, src, rec, "file_name", rules)
            for key, actual in (("width", facts.width), ("height", facts.height)):
                if key in img and expect(img[key], "number", src, rec, key) != actual:
                    raise Reject(
                        src, rec, key, f"declared {key} {img[key]} but the image has {actual}"
                    )
            group = img.get(group_key) if group_key else None
            if group is not None and not isinstance(group, str | int | float):
                expect(group, "string", src, rec, group_key)
            boxes = check_boxes(
                _raw_boxes(anns.get(iid, []), cats, src, rec), facts, src, rec, rules
            )
        except Reject as r:
            out.rejects.append(r.row())
            continue
        out.records.append(make_record(src, rec, facts, boxes, group))
    return out
