"""The report's HTML: one stylesheet (``report.css``) for every page, tables with units in the
header and numbers right-aligned in tabular figures, pictures embedded at the size they were
drawn for. Every page is self-contained (Snakemake shows each in a frame of its own)."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from importlib import resources

import matplotlib

matplotlib.use("Agg")

from PIL import Image  # noqa: E402

CSS = resources.files("drawtune.report").joinpath("report.css").read_text(encoding="utf-8")
DASH = "–"  # a value that does not exist (an untrained model's training time)


def esc(value) -> str:
    return html.escape(str(value), quote=True)


class Raw(str):
    """HTML that a table cell or page takes as it is (everything else is escaped)."""


def text(value) -> str:
    return value if isinstance(value, Raw) else esc(value)


@dataclass(frozen=True)
class Col:
    """A table column: its name, the unit shown under it, numbers right-aligned."""

    name: str
    unit: str = ""
    num: bool = False


def fmt(value, digits: int = 3) -> str:
    """A number with a fixed count of decimals (integers as they are); None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def pct(value, digits: int = 1) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def signed(value, digits: int = 3) -> Raw:
    """A difference with its sign, green when positive, red when negative."""
    if value is None:
        return Raw(DASH)
    s = f"{value:+.{digits}f}"
    if float(s) == 0:
        return Raw(f"{0:.{digits}f}")
    return Raw(f"<span class='{'pos' if value > 0 else 'neg'}'>{esc(s)}</span>")


def table(
    cols: list[Col],
    rows: list[list],
    caption: str = "",
    foot: list | None = None,
    row_class: list[str] | None = None,
    head_rows: int = 1,
) -> str:
    """``rows`` of cells (strings are escaped, :class:`Raw` kept); the first ``head_rows``
    cells of a row are row headers."""

    def cells(row, tag="td"):
        out = []
        for k, (c, v) in enumerate(zip(cols, row, strict=True)):
            t = "th" if k < head_rows and tag == "td" else tag
            cls = " class='num'" if c.num else ""
            out.append(f"<{t}{cls}>{text(v)}</{t}>")
        return "".join(out)

    def attr(value: str) -> str:
        return f" class='{esc(value)}'" if value else ""

    head = "".join(
        f"<th{attr('num' if c.num else '')}>{esc(c.name)}"
        + (f"<span class='unit'>{esc(c.unit)}</span>" if c.unit else "")
        + "</th>"
        for c in cols
    )
    marks = row_class or [""] * len(rows)
    body = "".join(f"<tr{attr(m)}>{cells(r)}</tr>" for m, r in zip(marks, rows, strict=True))
    cap = f"<caption>{text(caption)}</caption>" if caption else ""
    tfoot = f"<tfoot><tr>{cells(foot)}</tr></tfoot>" if foot else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{tfoot}</table>"


# Pictures are drawn with this many pixels per CSS pixel, so that they stay sharp on a
# high-density screen and in the browser test's screenshots, and shown at their CSS size.
DENSITY = 1.5
DPI = 100 * DENSITY  # matplotlib: a figure of w inches is shown w * 100 CSS pixels wide


def png_bytes(fig) -> bytes:
    """A matplotlib figure as PNG bytes, with no timestamp or software name (same bytes for
    the same figure)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def img(data: bytes, alt: str, width: int | None = None, density: float = DENSITY) -> str:
    """An embedded PNG shown ``width`` CSS pixels wide (default: its pixels / ``density``;
    charts are drawn at :data:`DENSITY`, drawings at 1)."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
    shown = width or round(w / density)
    height = round(h * shown / w)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    return f"<img src='{uri}' width='{shown}' height='{height}' alt='{esc(alt)}'>"


def figure(data: bytes, caption: str, width: int | None = None, density: float = DENSITY) -> str:
    pic = img(data, caption, width, density)
    return f"<figure>{pic}<figcaption>{text(caption)}</figcaption></figure>"


def page(title: str, body: str, lead: str = "") -> str:
    """A whole page: the stylesheet, a title, a line under it and the body."""
    sub = f"<p class='intro'>{text(lead)}</p>" if lead else ""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body class='drawtune'><main><h1>{esc(title)}</h1>{sub}{body}</main></body></html>\n"
    )
