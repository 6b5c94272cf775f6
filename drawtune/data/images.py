"""Opening drawings: PNG/JPEG/TIFF (multi-page) and PDF (multi-page, rasterised), with EXIF
orientation applied and modes normalised, under a pixel limit, memoised by file identity.

An image reference is a path, optionally with a 1-based page: ``sheet.pdf#2``, ``scan.tif#3``
(no page: page 1). Files that ms-swift can read as they are (a single-page PNG/JPEG/TIFF in RGB or
grey, no EXIF rotation, no transparency) are used in place; anything else (a PDF page, a later
TIFF page, a rotated or CMYK/16-bit/palette image) is written once as a PNG named by its content
hash under the dataset's ``normalised`` folder, and the record points there. A transparent
background (RGBA, LA, a palette or grey image with a transparent colour, as drawings rendered from
SVG or exported from CAD have) is composited onto white, as a viewer shows it: dropping the alpha
channel would leave the transparent pixels' hidden colour, usually black.

Reading is the slow part of validation, so the facts of each (file, size, mtime, page, settings)
are kept in a small cache folder: a rerun after adding one drawing decodes only that drawing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pdf", ".bmp", ".webp")
PDF_SUFFIXES = (".pdf",)
_PLAIN_MODES = ("RGB", "L")
_PLAIN_FORMATS = ("PNG", "JPEG")
# Bumped when the conversion changes (2: transparency composited onto white), so that image
# facts cached by an earlier version, pointing at differently converted pages, are not reused.
_CONVERSION = 2


class ImageProblem(Exception):
    """The image cannot be used; the message says why (the caller names file/record/field)."""


@dataclass(frozen=True)
class ImageFacts:
    path: str  # the file ms-swift will read (the original, or a normalised PNG)
    sha256: str  # content hash of what the model sees
    width: int
    height: int
    normalised: bool  # True when ``path`` is a converted copy
    scale: float = 1.0  # pixels per source unit (PDF points -> pixels); 1 for raster files
    source: str = ""  # the reference read (file, #page), set by the reader; never cached


def split_page(ref: str) -> tuple[str, int]:
    """``"a.pdf#2"`` -> ``("a.pdf", 2)``; no suffix -> page 1."""
    name, sep, page = ref.rpartition("#")
    if sep and page.isdigit() and name:
        if int(page) < 1:
            raise ImageProblem(f"page {page} in {ref!r}: pages count from 1")
        return name, int(page)
    return ref, 1


def _cache_key(path: Path, page: int, dpi: int, max_pixels: int) -> str:
    st = path.stat()
    where = os.path.relpath(os.path.abspath(path))  # a moved workflow keeps its cache
    if where.startswith(".."):
        where = os.path.abspath(path)
    ident = f"{where}\0{st.st_size}\0{st.st_mtime_ns}\0{page}\0{dpi}\0{max_pixels}"
    ident += f"\0v{_CONVERSION}"
    return hashlib.sha256(ident.encode()).hexdigest()


def _render_pdf(path: Path, page: int, dpi: int, max_pixels: int) -> Image.Image:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise ImageProblem(f"unreadable PDF {path}: {e}") from None
    try:
        if page > len(pdf):
            raise ImageProblem(f"{path} has {len(pdf)} page(s), page {page} was asked for")
        pg = pdf[page - 1]
        w_pt, h_pt = pg.get_size()
        scale = dpi / 72.0
        if w_pt * scale * h_pt * scale > max_pixels:
            raise ImageProblem(
                f"page {page} of {path} at {dpi} dpi is {round(w_pt * scale)}x"
                f"{round(h_pt * scale)} px, over the pixel limit {max_pixels}"
            )
        return pg.render(scale=scale).to_pil().convert("RGB")
    finally:
        pdf.close()


def has_transparency(im: Image.Image) -> bool:
    """Whether ``im`` has an alpha channel or a transparent colour (PNG ``tRNS``, GIF)."""
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def flatten(im: Image.Image) -> Image.Image:
    """``im`` as RGB or grey: transparency composited onto white, 16-bit grey scaled to 8."""
    if has_transparency(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if im.mode in _PLAIN_MODES:
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return im.point(lambda v: v / 256).convert("L")
    return im.convert("RGB")


def _open_raster(path: Path, page: int, max_pixels: int) -> tuple[Image.Image, bool]:
    """The decoded page and whether the file can be used in place."""
    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's own guard then matches the configured limit
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageProblem(
                f"image exceeds the pixel limit {max_pixels} (decompression-bomb guard): {e}"
            ) from None
        except Exception as e:  # noqa: BLE001 - PIL raises many types for broken files
            raise ImageProblem(f"unreadable image {path}: {e}") from None
    with im:
        n = getattr(im, "n_frames", 1)
        if page > n:
            raise ImageProblem(f"{path} has {n} page(s), page {page} was asked for")
        if page > 1:
            im.seek(page - 1)
        w, h = im.size
        if w * h > max_pixels:
            raise ImageProblem(f"{w}x{h} image exceeds the pixel limit {max_pixels}")
        try:
            im.load()
        except Exception as e:  # noqa: BLE001
            raise ImageProblem(f"unreadable image {path} (truncated or corrupt): {e}") from None
        orientation = im.getexif().get(0x0112, 1)
        in_place = (
            page == 1
            and n == 1
            and im.format in _PLAIN_FORMATS
            and im.mode in _PLAIN_MODES
            and not has_transparency(im)
            and orientation in (1, None)
        )
        transparent = has_transparency(im)
        out = ImageOps.exif_transpose(im)
        if transparent and not has_transparency(out):
            out.info["transparency"] = im.info.get("transparency")  # kept through the rotation
        return flatten(out), in_place


STATS = {"decoded": 0, "cached": 0}  # per process: how much work the memo saved
_MEMO: dict[str, ImageFacts] = {}


def inspect(
    ref: str | Path,
    normalised_dir: Path | None,
    *,
    dpi: int = 150,
    max_pixels: int = 100_000_000,
    cache_dir: Path | None = None,
    on_decode=None,
) -> ImageFacts:
    """Facts of one image reference, normalising it when ms-swift cannot read it as it is.
    ``on_decode(facts, image)``, when given, sees the decoded pixels of every image decoded
    (not those whose facts came from a cache), e.g. to fingerprint them without decoding twice.
    """
    name, page = split_page(str(ref))
    path = Path(name)
    if not path.is_file():
        raise ImageProblem(f"image file {path} does not exist")
    key = _cache_key(path, page, dpi, max_pixels)
    memo_key = f"{key}\0{normalised_dir}"
    if memo_key in _MEMO:
        STATS["cached"] += 1
        return _MEMO[memo_key]
    hit = Path(cache_dir) / key[:2] / f"{key}.json" if cache_dir else None
    if hit is not None and hit.is_file():
        facts = ImageFacts(**json.loads(hit.read_text()))
        if not facts.normalised or Path(facts.path).is_file():
            STATS["cached"] += 1
            _MEMO[memo_key] = facts
            return facts
    STATS["decoded"] += 1
    if path.suffix.lower() in PDF_SUFFIXES:
        im, in_place, scale = _render_pdf(path, page, dpi, max_pixels), False, dpi / 72.0
    else:
        (im, in_place), scale = _open_raster(path, page, max_pixels), 1.0
    if in_place:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        facts = ImageFacts(str(path), sha, im.width, im.height, False, scale)
    else:
        if normalised_dir is None:
            raise ImageProblem(f"{ref} needs converting to PNG but no folder was given for it")
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=False)
        data = buf.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        out = Path(normalised_dir) / f"{sha}.png"
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(out)
        facts = ImageFacts(str(out), sha, im.width, im.height, True, scale)
    if hit is not None:
        hit.parent.mkdir(parents=True, exist_ok=True)
        tmp = hit.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(facts)))
        tmp.replace(hit)
    _MEMO[memo_key] = facts
    if on_decode is not None:
        on_decode(facts, im)
    return facts


def prefetch(refs: list[str], workers: int, progress=None, **kw) -> None:
    """Inspect many images in threads (decoding and hashing release the GIL) so that the
    readers' sequential pass finds them memoised. Problems are left for that pass to report."""

    def one(ref):
        try:
            inspect(ref, **kw)
        except Exception:  # noqa: BLE001 - reported, with file and record, by the reader
            pass

    t0, n = time.monotonic(), len(refs)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for i, _ in enumerate(pool.map(one, refs), start=1):
            if progress and (i % 500 == 0 or i == n):
                dt = time.monotonic() - t0
                rate = i / dt if dt > 0 else 0.0
                eta = (n - i) / rate if rate else 0.0
                progress(f"images {i}/{n} ({rate:.0f}/s, ETA {eta:.0f} s)")


def store_embedded(data: bytes, folder: Path) -> Path:
    """An image embedded in an annotation file (LabelMe's ``imageData``) written once under
    ``folder``, named by its content hash, so that it can be inspected and trained on like any
    file."""
    sha = hashlib.sha256(data).hexdigest()
    suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg" if data[:2] == b"\xff\xd8" else ""
    out = Path(folder) / "embedded" / f"{sha}{suffix or '.img'}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(out)
    return out
