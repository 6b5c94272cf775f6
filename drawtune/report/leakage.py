"""The report's leakage page: per split pair the near-duplicate drawings that crossed splits,
their distance and the two drawings side by side; the drawings that bridged groups of different
splits and those held out; the links between datasets (``data.leakage`` computes them all).
Drawn in the report's one look (:mod:`drawtune.report.html`)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from ..jsonio import read_json
from .html import Col, Raw, esc, fmt, img, page, table

THUMB_HEIGHT = 180  # pixels of each drawing in a side-by-side picture
_GAP = 8
SPLIT_PAIRS = ("train-val", "train-test", "val-test")


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


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _who(d: dict, split: bool = False) -> Raw:
    ds = f"<b>{esc(d['dataset'])}</b> " if d.get("dataset") else ""
    where = f" ({esc(d['split'])})" if split and d.get("split") else ""
    return Raw(f"{ds}{esc(d['name'])}{where}<br><small>{esc(d['file'])} {esc(d['record'])}</small>")


def section(title: str, rep: dict, pictures: int) -> str:
    """One split's leakage (the detection pool, or one classification dataset) as HTML."""
    s = rep["settings"]
    if rep["fingerprinted"]:
        what = (
            f"{fmt(rep['fingerprinted'])} of {fmt(rep['drawings'])} drawings fingerprinted "
            f"({esc(rep['fingerprint'])}); near-duplicates differ in at most "
            f"{s['max_distance']} of {fmt(s['bits'])} bits"
        )
    else:
        what = f"fingerprints off ({fmt(rep['drawings'])} drawings)"
    if s.get("name_pattern"):
        what += f"; file names joined by <code>{esc(s['name_pattern'])}</code>"
    links = ", ".join(f"{esc(k)} {fmt(v)}" for k, v in rep["links"].items()) or "none"
    out = [f"<h2>{esc(title)}</h2>", f"<p>{what}. Links found: {links}.</p>"]
    if rep["leaks"]:
        verdict = (
            f"<b>{rep['leaks']} near-duplicate pair(s) cross splits</b>: the test score may "
            "partly measure memory."
        )
    else:
        verdict = "No near-duplicate pair crosses splits."
    if s["on_leak"] == "fail":
        verdict += f" The run fails above {s['max_leaks']} (on_leak: fail)."
    out.append(f"<p>{verdict}</p>")
    per = rep["per_split_pair"]
    rows = [[k, fmt(per[k])] for k in SPLIT_PAIRS if k in per]
    out.append(table([Col("split pair"), Col("pairs", num=True)], rows))
    if rep["pairs"]:
        rows = []
        for n, p in enumerate(rep["pairs"]):
            pic = ""
            if n < pictures:
                data = _png(side_by_side(p["a"]["image"], p["b"]["image"]))
                pic = img(data, f"{p['a']['name']} and {p['b']['name']}", density=1)
            why = esc(p["why"]) + (f" <code>{esc(p['key'])}</code>" if p.get("key") else "")
            rows.append(
                [
                    p["splits"],
                    _who(p["a"], split=True),
                    _who(p["b"], split=True),
                    fmt(p["distance"]),
                    Raw(why),
                    Raw(pic),
                ]
            )
        cols = [
            Col("splits"),
            Col("drawing"),
            Col("near-duplicate"),
            Col("distance", "bits", True),
            Col("linked by"),
            Col("side by side"),
        ]
        note = ""
        if len(rep["pairs"]) > pictures:
            note = f"; pictures of the first {pictures} (leakage.pictures)"
        out.append(table(cols, rows, f"Pairs across splits{note}"))
    if rep["bridges"]:
        rows = [
            [
                _who(b["newcomer"]),
                Raw(
                    "<br>".join(
                        f"{esc(ln['split'])}: {_who(ln)} ({ln['distance']} bits)"
                        for ln in b["links"]
                    )
                ),
                b["placed"],
            ]
            for b in rep["bridges"]
        ]
        cols = [Col("new drawing"), Col("near-duplicate of"), Col("went to")]
        out.append(
            table(
                cols,
                rows,
                "New drawings linking groups already in different splits (nothing moved)",
            )
        )
    if rep["held_out"]:
        rows = [[_who(h), h["reason"]] for h in rep["held_out"]]
        out.append(table([Col("drawing"), Col("why")], rows, "Held out of every split"))
    if rep["across_datasets"]:
        rows = [[k, fmt(v)] for k, v in rep["across_datasets"].items()]
        out.append(
            table(
                [Col("datasets"), Col("links", num=True)],
                rows,
                "Links between datasets (each group is kept in one split)",
            )
        )
    return "\n".join(out)


def leakage_page(reports: dict, out, pictures: int = 12) -> None:
    """The leakage page: ``reports`` maps a title (``detection``, ``classification <name>``)
    to the ``leakage.json`` of that split."""
    parts = [section(title, read_json(path), pictures) for title, path in reports.items()]
    body = "\n".join(parts) or "<p>No split was made.</p>"
    lead = (
        "Near-duplicate drawings (revisions, re-scans, exports, crops) are kept in one split; "
        "these are the pairs that still cross splits."
    )
    Path(out).write_text(page("Near-duplicates across splits", body, lead))
