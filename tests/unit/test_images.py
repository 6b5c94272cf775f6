"""Opening drawings: transparency composited onto white (issue 16, item 3)."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from drawtune.data.images import inspect


def _line_drawing(mode: str) -> Image.Image:
    """Black lines on a fully transparent background whose hidden colour is black, as drawings
    rendered from SVG or exported from CAD are."""
    im = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    ImageDraw.Draw(im).rectangle([10, 10, 40, 30], outline=(0, 0, 0, 255), width=2)
    if mode == "RGBA":
        return im
    if mode == "LA":
        return im.convert("LA")
    if mode == "P":  # a palette PNG with a transparent index
        p = Image.new("P", im.size, 0)
        p.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
        ImageDraw.Draw(p).rectangle([10, 10, 40, 30], outline=1, width=2)
        p.info["transparency"] = 0
        return p
    if mode == "RGB":  # an RGB PNG whose black is the transparent colour (tRNS)
        rgb = Image.new("RGB", im.size, (0, 0, 0))
        ImageDraw.Draw(rgb).rectangle([10, 10, 40, 30], outline=(1, 1, 1), width=2)
        rgb.info["transparency"] = (0, 0, 0)
        return rgb
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB"])
def test_transparent_background_becomes_white(tmp_path, mode):
    src = tmp_path / f"sheet_{mode}.png"
    im = _line_drawing(mode)
    im.save(src, **({"transparency": im.info["transparency"]} if "transparency" in im.info else {}))
    facts = inspect(src, tmp_path / "normalised")
    assert facts.normalised, "a transparent PNG is converted, not used as it is"
    with Image.open(facts.path) as out:
        out = out.convert("RGB")
        assert out.getpixel((2, 2)) == (255, 255, 255)  # background: white, not black
        assert out.getpixel((25, 10))[0] < 10  # the lines stay dark
        assert out.getpixel((25, 20)) == (255, 255, 255)


def test_opaque_rgb_png_is_used_in_place(tmp_path):
    src = tmp_path / "plain.png"
    Image.new("RGB", (32, 32), (255, 255, 255)).save(src)
    facts = inspect(src, tmp_path / "normalised")
    assert not facts.normalised and facts.path == str(src)
