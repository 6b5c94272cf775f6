"""Box coordinate conventions of the Qwen-VL families.

Every box inside drawtune is kept in *original image pixels* ``[x1, y1, x2, y2]``.
Only the model-facing text uses a family convention:

* ``qwen3_vl``: integers 0..1000 relative to the image width/height (Qwen3-VL grounding).
* ``qwen2_5_vl``: integer absolute pixels of the image *after* Qwen's smart resize
  (sides rounded to multiples of 28 and bounded by ``min_pixels``/``max_pixels``), because
  that is the image the model sees.

ms-swift does not convert plain-text answers, neither at training nor at inference, so the
conversion both ways lives here. Rounding is half-up (``floor(v + 0.5)``), the same every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FAMILIES = ("qwen3_vl", "qwen2_5_vl")
QWEN3_SCALE = 1000
# Qwen2.5-VL: patch 14, spatial merge 2 -> one visual token per 28x28 pixels.
QWEN25_FACTOR = 28
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 1280 * 28 * 28


@dataclass(frozen=True)
class ResizeSpec:
    """Smart-resize bounds shared by conversion, training and inference."""

    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS
    factor: int = QWEN25_FACTOR

    def effective(self) -> ResizeSpec:
        """Bounds as ms-swift applies them: it turns MIN/MAX_PIXELS into whole token counts
        (``pixels // factor**2``) and qwen-vl-utils multiplies back, so round down the same way."""
        f2 = self.factor * self.factor
        return ResizeSpec(
            min_pixels=(self.min_pixels // f2) * f2,
            max_pixels=(self.max_pixels // f2) * f2,
            factor=self.factor,
        )


DEFAULT_SPEC = ResizeSpec()


def _half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def smart_resize(width: int, height: int, spec: ResizeSpec = ResizeSpec()) -> tuple[int, int]:
    """Return ``(width, height)`` of the image the model sees, using qwen-vl-utils itself."""
    from qwen_vl_utils.vision_process import smart_resize as _qwen_smart_resize

    eff = spec.effective()
    h_bar, w_bar = _qwen_smart_resize(
        height, width, factor=eff.factor, min_pixels=eff.min_pixels, max_pixels=eff.max_pixels
    )
    return int(w_bar), int(h_bar)


def model_frame(family: str, width: int, height: int, spec: ResizeSpec = ResizeSpec()):
    """Size of the coordinate frame the family answers in: (fx, fy)."""
    if family == "qwen3_vl":
        return QWEN3_SCALE, QWEN3_SCALE
    if family == "qwen2_5_vl":
        return smart_resize(width, height, spec)
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def to_model(box, family: str, width: int, height: int, spec: ResizeSpec = ResizeSpec()):
    """Original-pixel box -> integer box in the family's convention (clamped to the frame)."""
    fx, fy = model_frame(family, width, height, spec)
    x1, y1, x2, y2 = box
    out = [
        _half_up(x1 * fx / width),
        _half_up(y1 * fy / height),
        _half_up(x2 * fx / width),
        _half_up(y2 * fy / height),
    ]
    return [
        min(max(out[0], 0), fx),
        min(max(out[1], 0), fy),
        min(max(out[2], 0), fx),
        min(max(out[3], 0), fy),
    ]


def from_model(box, family: str, width: int, height: int, spec: ResizeSpec = ResizeSpec()):
    """Box in the family's convention -> float box in original pixels (clamped to the image)."""
    fx, fy = model_frame(family, width, height, spec)
    x1, y1, x2, y2 = (float(v) for v in box)
    out = [x1 * width / fx, y1 * height / fy, x2 * width / fx, y2 * height / fy]
    out = [
        min(max(out[0], 0.0), width),
        min(max(out[1], 0.0), height),
        min(max(out[2], 0.0), width),
        min(max(out[3], 0.0), height),
    ]
    # A model may answer corners in either order; keep the box, normalised.
    return [min(out[0], out[2]), min(out[1], out[3]), max(out[0], out[2]), max(out[1], out[3])]


def vision_factor(family: str) -> int:
    """Pixels per visual token side: 28 for Qwen2.5-VL (patch 14), 32 for Qwen3-VL (patch 16)."""
    return 32 if family == "qwen3_vl" else 28
