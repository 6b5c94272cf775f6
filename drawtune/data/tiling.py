"""Large sheets as overlapping tiles (issue 18): the views a model is shown of one sheet, the
boxes each view holds, and the images and ms-swift rows of a tiled split.

A model sees at most ``max_pixels`` of a drawing, so a whole A1 scan is shrunk 50-100x and small
objects vanish. A tiled experiment is shown each sheet as ``tiling.size``-pixel tiles that
overlap by ``tiling.overlap`` of their side (sahi's slicing, :func:`sahi.slicing.get_slice_bboxes`)
and, with ``tiling.whole``, a downscaled whole-sheet view beside them (large objects such as
views and title blocks are best seen whole). A sheet that fits in one tile is shown whole only,
exactly as an untiled experiment shows it.

Each view maps back to the sheet by ``sheet = offset + view_pixels * scale``: a tile has its
top-left corner as ``offset`` and ``scale`` 1, the whole view ``offset`` 0 and ``scale`` the
sheet's size over the view's. Boxes cut by a tile's border are clipped to it (sahi's
:func:`sahi.slicing.process_coco_annotations`) and kept when at least ``tiling.min_visible`` of
their area is inside the tile; tiny slivers are dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from ..coords import ResizeSpec, smart_resize, vision_factor
from ..errors import DrawtuneError
from ..jsonio import dump_jsonl, load_jsonl
from .convert import answer_text, manifest_row

# written next to a merged model: the tiling it was trained with (`drawtune predict`/`serve`)
MODEL_TILING = "drawtune-tiling.json"
TILE_KEYS = ("size", "overlap", "min_visible", "whole")


class TilingError(DrawtuneError):
    """A tiled split or model that cannot be read back (a view without its sheet...)."""


@dataclass(frozen=True)
class Tiling:
    """How a sheet is cut (the experiment's ``tiling`` block less ``merge``)."""

    size: int  # tile side in sheet pixels
    overlap: float = 0.2  # fraction of the side two neighbouring tiles share (at least)
    min_visible: float = 0.3  # a clipped box is kept when this fraction of its area is inside
    whole: bool = True  # also show the whole sheet, downscaled, beside the tiles

    @classmethod
    def of(cls, block: dict | None) -> Tiling | None:
        """The tiling of a config block (``experiments.<name>.tiling``), None without one."""
        if not block:
            return None
        return cls(**{k: block[k] for k in TILE_KEYS if k in block})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class View:
    """One picture of a sheet the model is shown: a tile or the whole sheet."""

    kind: str  # "tile" or "whole"
    offset: tuple[int, int]  # the view's top-left corner in sheet pixels
    width: int  # the view image's size in its own pixels
    height: int
    scale: tuple[float, float] = (1.0, 1.0)  # sheet pixels per view pixel

    @property
    def crop(self) -> tuple[int, int, int, int]:
        """The part of the sheet it shows, in sheet pixels."""
        x, y = self.offset
        sx, sy = self.scale
        return (x, y, x + round(self.width * sx), y + round(self.height * sy))

    def to_sheet(self, box) -> list[float]:
        """A box in the view's pixels -> the sheet's pixels."""
        (x, y), (sx, sy) = self.offset, self.scale
        return [x + box[0] * sx, y + box[1] * sy, x + box[2] * sx, y + box[3] * sy]


def tile_boxes(width: int, height: int, tiling: Tiling) -> list[list[int]]:
    """The tiles of a sheet as ``[x1, y1, x2, y2]``, row by row (sahi's slicing: neighbours
    share at least ``overlap`` of the side; the last tile of a row or column is moved back to
    end at the sheet's border). None (``[]``) when the sheet fits in one tile."""
    if width <= tiling.size and height <= tiling.size:
        return []
    from sahi.slicing import get_slice_bboxes  # only where tiling is on (not on GPU nodes)

    return get_slice_bboxes(
        image_height=height,
        image_width=width,
        slice_height=tiling.size,
        slice_width=tiling.size,
        auto_slice_resolution=False,
        overlap_height_ratio=tiling.overlap,
        overlap_width_ratio=tiling.overlap,
    )


def whole_view(width: int, height: int, family: str, spec: ResizeSpec) -> View:
    """The whole sheet downscaled to the image the model sees (its smart resize), so that the
    model's own resize leaves it as it is; never larger than the sheet."""
    fam_spec = ResizeSpec(spec.min_pixels, spec.max_pixels, vision_factor(family))
    rw, rh = smart_resize(width, height, fam_spec)
    if rw >= width or rh >= height:
        return View("whole", (0, 0), width, height)
    return View("whole", (0, 0), rw, rh, (width / rw, height / rh))


def sheet_views(width: int, height: int, tiling: Tiling, family: str, spec: ResizeSpec):
    """Every view of one sheet: the whole view (when kept, or when the sheet fits in one tile),
    then the tiles row by row."""
    tiles = tile_boxes(width, height, tiling)
    if not tiles:
        return [View("whole", (0, 0), width, height)]
    views = [whole_view(width, height, family, spec)] if tiling.whole else []
    views += [View("tile", (x1, y1), x2 - x1, y2 - y1) for x1, y1, x2, y2 in tiles]
    return views


def view_boxes(boxes: list[dict], view: View, min_visible: float) -> list[dict]:
    """The sheet's boxes as one view holds them, in the view's pixels: all of them, scaled, in
    the whole view; in a tile, each clipped to it (sahi) and kept when at least ``min_visible``
    of its area is inside."""
    if view.kind == "whole":
        sx, sy = view.scale
        return [
            {
                **b,
                "bbox": [
                    b["bbox"][0] / sx,
                    b["bbox"][1] / sy,
                    b["bbox"][2] / sx,
                    b["bbox"][3] / sy,
                ],
            }
            for b in boxes
        ]
    from sahi.slicing import process_coco_annotations
    from sahi.utils.coco import CocoAnnotation

    labels = sorted({b["label"] for b in boxes})
    ids = {label: i + 1 for i, label in enumerate(labels)}
    out = []
    for b in boxes:
        x1, y1, x2, y2 = b["bbox"]
        ann = CocoAnnotation.from_coco_bbox([x1, y1, x2 - x1, y2 - y1], ids[b["label"]], b["label"])
        for cut in process_coco_annotations([ann], list(view.crop), min_visible):
            cx, cy, cw, ch = cut.bbox
            out.append({**b, "bbox": [cx, cy, cx + cw, cy + ch]})
    return out


@contextlib.contextmanager
def _opened(path: str, width: int, height: int):
    """A validated sheet, opened whatever its size (validation bounded it already)."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max(limit or 0, width * height + 1)
    try:
        with Image.open(path) as im:
            if im.size != (width, height):
                raise TilingError(
                    f"{path}: image is {im.size[0]}x{im.size[1]}, records say {width}x{height}"
                )
            yield im
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def view_image(im: Image.Image, view: View) -> Image.Image:
    """The view's picture of an opened sheet: a crop, or the whole sheet resized."""
    if view.kind == "tile":
        return im.crop(view.crop)
    if (view.width, view.height) == im.size:
        return im.copy()
    return im.resize((view.width, view.height), Image.Resampling.LANCZOS)


def view_name(sha256: str, view: View) -> str:
    """A view's file name: the sheet's content hash and the view's place and size."""
    x, y = view.offset
    return f"{sha256[:16]}_{view.kind}_x{x}_y{y}_{view.width}x{view.height}.png"


def write_views(
    path: str,
    width: int,
    height: int,
    views: list[View],
    folder: Path,
    stem: str,
    fast: bool = False,
) -> list[str]:
    """Each view of a sheet as a PNG under ``folder``; a view that is the sheet itself keeps the
    sheet's own path (nothing written). Returns the paths, in order. ``fast`` (a served
    request's views, read once and thrown away): encoded with zlib level 1 by several threads
    (the pixels are the same; only training data keep the default, smaller files)."""
    out = [path if v.kind == "whole" and (v.width, v.height) == (width, height) else None
           for v in views]  # fmt: skip
    with _opened(path, width, height) as im:
        im.load()  # decoded once, before any thread crops it

        def save(k: int) -> str:
            dest = folder / view_name(stem, views[k])
            opts = {"compress_level": 1} if fast else {"optimize": False}
            view_image(im, views[k]).save(dest, **opts)
            return str(dest)

        todo = [k for k, o in enumerate(out) if o is None]
        if fast and len(todo) > 1:
            with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
                done = list(pool.map(save, todo))
        else:
            done = [save(k) for k in todo]
    for k, dest in zip(todo, done, strict=True):
        out[k] = dest
    return out


def manifest_view(record: dict, view: View, image: str, family: str, spec: ResizeSpec) -> dict:
    """The manifest row of one view: its image and sizes as the untiled manifest has them, and
    the sheet it shows with the view's offset and scale (``sheet = offset + pixels * scale``)."""
    row = manifest_row(
        {**record, "image": image, "width": view.width, "height": view.height}, family, spec
    )
    return {
        **row,
        "sheet": record["image"],
        "sheet_width": record["width"],
        "sheet_height": record["height"],
        "view": view.kind,
        "offset": list(view.offset),
        "scale": [round(view.scale[0], 9), round(view.scale[1], 9)],
    }


def view_of(manifest: dict) -> View:
    """A view read back from its manifest row."""
    try:
        return View(
            manifest["view"],
            tuple(manifest["offset"]),
            manifest["width"],
            manifest["height"],
            tuple(manifest["scale"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise TilingError(
            f"manifest row of {manifest.get('image')!r} is no tiled view ({e})"
        ) from None


def tiled_rows(record, family, prompt, spec, tiling: Tiling, folder: Path):
    """The ms-swift rows and manifest rows of one sheet: one per view."""
    views = sheet_views(record["width"], record["height"], tiling, family, spec)
    images = write_views(
        record["image"], record["width"], record["height"], views, folder, record["sha256"]
    )
    rows, manifest = [], []
    for view, image in zip(views, images, strict=True):
        boxes = view_boxes(record["boxes"], view, tiling.min_visible)
        answer = answer_text(boxes, family, view.width, view.height, spec)
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": "<image>" + prompt},
                    {"role": "assistant", "content": answer},
                ],
                "images": [image],
            }
        )
        manifest.append(manifest_view(record, view, image, family, spec))
    return rows, manifest


def convert_tiled_split(
    records_file, family, prompt, spec, tiling: Tiling, jsonl_out, manifest_out, tiles_dir
) -> int:
    """One split as ms-swift rows, one per view of each sheet, the views' images under
    ``tiles_dir``; returns the number of rows."""
    folder = Path(tiles_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows, manifest = [], []
    for record in load_jsonl(records_file):
        r, m = tiled_rows(record, family, prompt, spec, tiling, folder)
        rows += r
        manifest += m
    dump_jsonl(rows, jsonl_out)
    dump_jsonl(manifest, manifest_out)
    return len(rows)


def image_views(
    path: str, width: int, height: int, tiling, family, spec, folder, fast: bool = False
) -> list[dict]:
    """The views of one drawing outside the workflow (``drawtune predict``, ``serve.ask``, the
    serving front with ``fast``: :func:`write_views`) as manifest rows, their images under
    ``folder``; untiled (``tiling`` None): the drawing itself as one whole view."""
    path = str(Path(path).resolve())
    record = {"image": path, "sha256": "", "width": width, "height": height}
    if tiling is None:
        views, images = [View("whole", (0, 0), width, height)], [path]
    else:
        views = sheet_views(width, height, tiling, family, spec)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        images = write_views(path, width, height, views, folder, Path(path).stem, fast)
    return [manifest_view(record, v, i, family, spec) for v, i in zip(views, images, strict=True)]


def write_model_tiling(model_dir, tiling: Tiling | None) -> None:
    """Record next to a model the tiling it was trained with (nothing for an untiled one)."""
    if tiling is not None:
        text = json.dumps(tiling.as_dict(), indent=1, sort_keys=True)
        (Path(model_dir) / MODEL_TILING).write_text(text + "\n")


def model_tiling(model_dir, configured: dict | None = None) -> Tiling | None:
    """The tiling a model is used with: the one recorded next to it, else the config's."""
    path = Path(str(model_dir)) / MODEL_TILING
    if path.is_file():
        try:
            return Tiling.of(json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise TilingError(f"{path}: not a tiling record ({e})") from None
    return Tiling.of(configured)
