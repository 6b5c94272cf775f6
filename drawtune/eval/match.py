"""Pairing ms-swift infer rows with the drawings they answer."""

from __future__ import annotations

from pathlib import Path


def row_image(row: dict) -> str:
    img = (row.get("images") or [None])[0]
    return img.get("path") if isinstance(img, dict) else img


def match_results(rows: list[dict], truth: dict) -> list[tuple[dict, dict | None]]:
    """Pair each truth image with its result row: by path, then by unique file name."""
    by_path = {}
    by_name: dict[str, list] = {}
    for r in rows:
        p = row_image(r)
        if p is None:
            continue
        by_path.setdefault(str(p), r)
        by_name.setdefault(Path(str(p)).name, []).append(r)
    # rows taken by an exact path are never offered to another image by name
    taken = {id(by_path[i["file_name"]]) for i in truth["images"] if i["file_name"] in by_path}
    pairs = []
    for img in truth["images"]:
        r = by_path.get(img["file_name"])
        if r is None:
            cands = by_name.get(Path(img["file_name"]).name, [])
            r = cands[0] if len(cands) == 1 and id(cands[0]) not in taken else None
        pairs.append((img, r))
    return pairs
