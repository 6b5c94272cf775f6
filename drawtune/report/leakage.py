"""The report's leakage page: per split pair the near-duplicate drawings that crossed splits,
their distance and the two drawings side by side; the drawings that bridged groups of different
splits and those held out; the links between datasets (``data.leakage`` computes them all)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from ..jsonio import read_json

THUMB_HEIGHT = 180  # pixels of each drawing in a side-by-side picture
_GAP = 8


def side_by_side(a, b, height: int = THUMB_HEIGHT) -> Image.Image:
    """Two drawings scaled to one height, next to each other on white with a grey rule between;
    a drawing that cannot be opened is a grey box saying so."""
    tiles = []
    for path in (a, b):
        try:
            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
                w = max(1, round(im.width * height / im.height))
                tiles.append(im.resize((w, height), Image.Resampling.LANCZOS))
        except (OSError, ValueError):
            tile = Image.new("RGB", (height, height), (220, 220, 220))
            ImageDraw.Draw(tile).text((8, height // 2), "missing", fill=(90, 90, 90))
            tiles.append(tile)
    out = Image.new("RGB", (tiles[0].width + tiles[1].width + _GAP, height), "white")
    out.paste(tiles[0], (0, 0))
    out.paste(tiles[1], (tiles[0].width + _GAP, 0))
    x = tiles[0].width + _GAP // 2
    ImageDraw.Draw(out).line([(x, 0), (x, height)], fill=(160, 160, 160))
    return out


def _png(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _e(v) -> str:
    return html.escape("" if v is None else str(v))


def _who(d: dict, split: bool = False) -> str:
    ds = f"<b>{_e(d['dataset'])}</b> " if d.get("dataset") else ""
    where = f" ({_e(d['split'])})" if split and d.get("split") else ""
    return f"{ds}{_e(d['name'])}{where}<br><small>{_e(d['file'])} {_e(d['record'])}</small>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table border='1' cellpadding='4'><tr>{th}</tr>{body}</table>"


def section(title: str, rep: dict, pictures: int) -> str:
    """One split's leakage (the detection pool, or one classification dataset) as HTML."""
    s = rep["settings"]
    fp = (
        f"{rep['fingerprinted']} of {rep['drawings']} drawings fingerprinted "
        f"({_e(rep['fingerprint'])}); near-duplicates differ in at most {s['max_distance']} of "
        f"{s['bits']} bits"
        if rep["fingerprinted"]
        else f"fingerprints off ({rep['drawings']} drawings)"
    )
    if s.get("name_pattern"):
        fp += f"; file names joined by <code>{_e(s['name_pattern'])}</code>"
    links = ", ".join(f"{_e(k)} {v}" for k, v in rep["links"].items()) or "none"
    out = [f"<h3>{_e(title)}</h3>", f"<p>{fp}. Links found: {links}.</p>"]
    verdict = (
        "No near-duplicate pair crosses splits."
        if not rep["leaks"]
        else f"<b>{rep['leaks']} near-duplicate pair(s) cross splits</b>: the test score may "
        "partly measure memory."
    )
    if s["on_leak"] == "fail":
        verdict += f" The run fails above {s['max_leaks']} (on_leak: fail)."
    out.append(f"<p>{verdict}</p>")
    per = rep["per_split_pair"]
    order = [k for k in ("train-val", "train-test", "val-test") if k in per]
    out.append(_table(["split pair", "pairs"], [[k, str(per[k])] for k in order]))
    if rep["pairs"]:
        rows = []
        for n, p in enumerate(rep["pairs"]):
            pic = ""
            if n < pictures:
                pic = f"<img src='{_png(side_by_side(p['a']['image'], p['b']['image']))}'>"
            dist = "-" if p["distance"] is None else f"{p['distance']}"
            why = _e(p["why"]) + (f" <code>{_e(p['key'])}</code>" if p.get("key") else "")
            rows.append(
                [
                    _e(p["splits"]),
                    _who(p["a"], split=True),
                    _who(p["b"], split=True),
                    dist,
                    why,
                    pic,
                ]
            )
        out.append("<h4>Pairs across splits</h4>")
        out.append(_table(["splits", "drawing", "near-duplicate", "bits", "by", "picture"], rows))
        if len(rep["pairs"]) > pictures:
            out.append(f"<p>Pictures of the first {pictures} pairs (leakage.pictures).</p>")
    if rep["bridges"]:
        rows = [
            [
                _who(b["newcomer"]),
                "<br>".join(
                    f"{_e(ln['split'])}: {_who(ln)} ({ln['distance']} bits)" for ln in b["links"]
                ),
                _e(b["placed"]),
            ]
            for b in rep["bridges"]
        ]
        out.append("<h4>New drawings linking groups already in different splits</h4>")
        out.append("<p>Nothing moved; each went where the last column says.</p>")
        out.append(_table(["new drawing", "near-duplicate of", "went to"], rows))
    if rep["held_out"]:
        rows = [[_who(h), _e(h["reason"])] for h in rep["held_out"]]
        out.append("<h4>Held out of every split</h4>")
        out.append(_table(["drawing", "why"], rows))
    if rep["across_datasets"]:
        rows = [[_e(k), str(v)] for k, v in rep["across_datasets"].items()]
        out.append("<h4>Links between datasets</h4>")
        out.append(
            "<p>Drawings of one dataset that are near-duplicates of (or share a key with) "
            "drawings of another; each group is kept in one split.</p>"
        )
        out.append(_table(["datasets", "links"], rows))
    return "\n".join(out)


def leakage_page(reports: dict, out, pictures: int = 12) -> None:
    """The leakage page: ``reports`` maps a title (``detection``, ``classification <name>``)
    to the ``leakage.json`` of that split."""
    parts = [section(title, read_json(path), pictures) for title, path in reports.items()]
    if not parts:
        parts = ["<p>No split was made.</p>"]
    title = "<h2>Near-duplicates across splits</h2>"
    Path(out).write_text(f"<html><body>{title}\n" + "\n".join(parts) + "\n</body></html>\n")
