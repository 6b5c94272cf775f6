"""Box conventions of the two Qwen-VL families, checked against numbers worked out by hand."""

from __future__ import annotations

import random

import pytest
from qwen_vl_utils.vision_process import smart_resize as qwen_smart_resize

from drawtune.coords import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    ResizeSpec,
    from_model,
    model_frame,
    smart_resize,
    to_model,
)

# ----------------------------------------------------------------------------- qwen3_vl


def test_qwen3_relative_thousandths():
    # 640x480, box [64, 48, 320, 240]:
    #   x1 = 64*1000/640 = 100, y1 = 48*1000/480 = 100, x2 = 320*1000/640 = 500, y2 = 500
    assert to_model([64, 48, 320, 240], "qwen3_vl", 640, 480) == [100, 100, 500, 500]
    # The full image is [0, 0, 1000, 1000] whatever its size.
    assert to_model([0, 0, 437, 309], "qwen3_vl", 437, 309) == [0, 0, 1000, 1000]


def test_qwen3_rounds_half_up():
    # 400x200 image: one pixel is 2.5 units across and 5 units down.
    #   x1 = 1*1000/400 = 2.5  -> 3   (Python's round() would give 2)
    #   y1 = 1*1000/200 = 5.0  -> 5
    #   x2 = 5*1000/400 = 12.5 -> 13  (round() would give 12)
    #   y2 = 5*1000/200 = 25.0 -> 25
    assert to_model([1, 1, 5, 5], "qwen3_vl", 400, 200) == [3, 5, 13, 25]
    # [3, 0, 7, 1]: 3*2.5 = 7.5 -> 8, 0, 7*2.5 = 17.5 -> 18, 1*5 = 5
    assert to_model([3, 0, 7, 1], "qwen3_vl", 400, 200) == [8, 0, 18, 5]
    # just below the half rounds down: 1.19*2.5 = 2.975 -> 3 but 0.99*2.5 = 2.475 -> 2
    assert to_model([0.99, 0, 1.19, 1], "qwen3_vl", 400, 200) == [2, 0, 3, 5]


def test_qwen3_from_model_back_to_pixels():
    # 200x100 image: x = v*200/1000, y = v*100/1000
    #   [100, 200, 500, 800] -> [20, 20, 100, 80]
    assert from_model([100, 200, 500, 800], "qwen3_vl", 200, 100) == [20.0, 20.0, 100.0, 80.0]


def test_qwen3_frame_ignores_resize_spec():
    spec = ResizeSpec(min_pixels=3136, max_pixels=50_000)
    assert model_frame("qwen3_vl", 5000, 100, spec) == (1000, 1000)


# --------------------------------------------------------------------------- qwen2_5_vl


def test_smart_resize_non_multiple_of_28():
    # 1000x700 with the default bounds (min 4*784 = 3136, max 1280*784 = 1003520):
    #   width  1000/28 = 35.71 -> round 36 -> 36*28 = 1008
    #   height  700/28 = 25.00 -> round 25 -> 25*28 = 700
    #   1008*700 = 705600 lies within [3136, 1003520], so no rescaling.
    assert smart_resize(1000, 700) == (1008, 700)
    # drawtune returns (width, height); qwen-vl-utils (height, width).
    h, w = qwen_smart_resize(
        700, 1000, factor=28, min_pixels=DEFAULT_MIN_PIXELS, max_pixels=DEFAULT_MAX_PIXELS
    )
    assert (w, h) == (1008, 700)
    assert model_frame("qwen2_5_vl", 1000, 700) == (1008, 700)
    # 437x309: 437/28 = 15.61 -> 16 -> 448; 309/28 = 11.04 -> 11 -> 308
    assert smart_resize(437, 309) == (448, 308)


def test_qwen25_absolute_pixels_of_resized_image():
    # 1000x700 -> seen as 1008x700 (above); box [100, 50, 500, 350]:
    #   x1 = 100*1008/1000 = 100.8 -> 101
    #   y1 =  50* 700/ 700 = 50
    #   x2 = 500*1008/1000 = 504.0 -> 504
    #   y2 = 350* 700/ 700 = 350
    assert to_model([100, 50, 500, 350], "qwen2_5_vl", 1000, 700) == [101, 50, 504, 350]
    # back: 101*1000/1008 = 100.198..., 504*1000/1008 = 500
    back = from_model([101, 50, 504, 350], "qwen2_5_vl", 1000, 700)
    assert back == pytest.approx([101000 / 1008, 50.0, 500.0, 350.0])
    assert back[0] == pytest.approx(100.1984127, abs=1e-6)


def test_qwen25_max_pixels_forces_downscale():
    # 2000x1500 with max_pixels 100_000 -> effective max 127*784 = 99568 (see effective()).
    #   rounded: 2016x1512 = 3048192 > 99568, so
    #   beta = sqrt(2000*1500/99568) = sqrt(30.1302) = 5.48910
    #   width  = floor(2000/5.48910/28)*28 = floor(364.36/28)*28 = 13*28 = 364
    #   height = floor(1500/5.48910/28)*28 = floor(273.27/28)*28 =  9*28 = 252
    spec = ResizeSpec(min_pixels=3136, max_pixels=100_000)
    assert smart_resize(2000, 1500, spec) == (364, 252)
    assert model_frame("qwen2_5_vl", 2000, 1500, spec) == (364, 252)
    # box [1000, 750, 2000, 1500] -> [1000*364/2000, 750*252/1500, 364, 252] = [182, 126, 364, 252]
    assert to_model([1000, 750, 2000, 1500], "qwen2_5_vl", 2000, 1500, spec) == [182, 126, 364, 252]
    # [0, 0, 1, 1]: 1*364/2000 = 0.182 -> 0 and 1*252/1500 = 0.168 -> 0
    assert to_model([0, 0, 1, 1], "qwen2_5_vl", 2000, 1500, spec) == [0, 0, 0, 0]


def test_effective_rounds_bounds_down_to_whole_tokens():
    # 3137 // 784 = 4 -> 3136; 100000 // 784 = 127 -> 99568 (128*784 = 100352 is too many)
    assert ResizeSpec(min_pixels=3137, max_pixels=100_000).effective() == ResizeSpec(
        min_pixels=3136, max_pixels=99568, factor=28
    )
    # already whole tokens: unchanged
    assert ResizeSpec(3136, 1003520).effective() == ResizeSpec(3136, 1003520, 28)
    # another factor squares that factor: 3137 // 1024 = 3 -> 3072; 100000 // 1024 = 97 -> 99328
    assert ResizeSpec(3137, 100_000, 32).effective() == ResizeSpec(3072, 99328, 32)


def test_smart_resize_uses_effective_bounds():
    # min_pixels 3137 -> 3136 effective: a 56x56 image (3136 pixels) is not upscaled ...
    assert smart_resize(56, 56, ResizeSpec(min_pixels=3137)) == (56, 56)
    # ... while qwen-vl-utils with the raw bound would: ceil(56*sqrt(3137/3136)/28)*28 = 84
    assert qwen_smart_resize(56, 56, factor=28, min_pixels=3137, max_pixels=DEFAULT_MAX_PIXELS) == (
        84,
        84,
    )
    # 300x382, max 100_000 -> 99568 effective; rounded 308x392 = 120736 is too big:
    #   beta = sqrt(300*382/99568) = sqrt(1.150972) = 1.072834
    #   width  = floor(300/1.072834/28)*28 = floor(279.63/28)*28 = 9*28 = 252
    #   height = floor(382/1.072834/28)*28 = floor(356.07/28)*28 = 12*28 = 336
    # With the raw 100_000, beta = 1.070514 and width = floor(280.24/28)*28 = 280.
    assert smart_resize(300, 382, ResizeSpec(max_pixels=100_000)) == (252, 336)
    assert qwen_smart_resize(382, 300, factor=28, min_pixels=3136, max_pixels=100_000) == (336, 280)


# ---------------------------------------------------------------------- both families

CASES = [
    ("qwen3_vl", 640, 480, ResizeSpec()),
    ("qwen3_vl", 437, 309, ResizeSpec()),
    ("qwen2_5_vl", 1000, 700, ResizeSpec()),
    ("qwen2_5_vl", 437, 309, ResizeSpec()),
    ("qwen2_5_vl", 2000, 1500, ResizeSpec(min_pixels=3136, max_pixels=100_000)),
]


@pytest.mark.parametrize("family, w, h, spec", CASES)
def test_round_trip_within_one_model_unit(family, w, h, spec):
    fx, fy = model_frame(family, w, h, spec)
    rng = random.Random(f"{family}-{w}-{h}")
    for _ in range(200):
        xs = sorted(rng.uniform(0, w) for _ in range(2))
        ys = sorted(rng.uniform(0, h) for _ in range(2))
        box = [xs[0], ys[0], xs[1], ys[1]]
        m = to_model(box, family, w, h, spec)
        assert all(isinstance(v, int) for v in m)
        px = from_model(m, family, w, h, spec)
        # half-up rounding moves a coordinate at most half a model unit
        for v, p, unit in zip(box, px, (w / fx, h / fy, w / fx, h / fy), strict=True):
            assert abs(v - p) <= 0.5 * unit + 1e-9
        # and integer model boxes survive the trip to pixels and back exactly
        assert to_model(px, family, w, h, spec) == m


@pytest.mark.parametrize("family, w, h, spec", CASES)
def test_to_model_clamps_to_frame(family, w, h, spec):
    fx, fy = model_frame(family, w, h, spec)
    assert to_model([-10, -5, w + 100, h + 50], family, w, h, spec) == [0, 0, fx, fy]
    assert to_model([w * 2, h * 2, w * 3, h * 3], family, w, h, spec) == [fx, fy, fx, fy]


def test_from_model_clamps_and_normalises():
    # qwen3_vl on 1000x700: x = v, y = v*0.7
    #   [-50, 1200, 500, 500] -> [-50, 840, 500, 350] -> clamp [0, 700, 500, 350]
    #   -> corners sorted [0, 350, 500, 700]
    assert from_model([-50, 1200, 500, 500], "qwen3_vl", 1000, 700) == [0.0, 350.0, 500.0, 700.0]
    # qwen2_5_vl on 1000x700 (frame 1008x700): 2016 -> 2000 -> clamped to 1000
    assert from_model([0, 0, 2016, 800], "qwen2_5_vl", 1000, 700) == [0.0, 0.0, 1000.0, 700.0]


@pytest.mark.parametrize(
    "call",
    [
        lambda f: model_frame(f, 100, 100),
        lambda f: to_model([0, 0, 1, 1], f, 100, 100),
        lambda f: from_model([0, 0, 1, 1], f, 100, 100),
    ],
)
@pytest.mark.parametrize("family", ["qwen2_vl", "pixels", ""])
def test_unknown_family_raises(call, family):
    with pytest.raises(ValueError, match="unknown model family"):
        call(family)
