"""YOLO txt datasets in the layouts Ultralytics, Roboflow and CVAT write.

Images are every image under the dataset's ``images`` folders (``images/``, ``images/train/``,
``train/images/``... any folder named ``images``; ``images`` when configured; the dataset
folder itself when it has none). Each image's label file is found, in this order, at its path
with the last ``images`` folder replaced by ``labels`` (Ultralytics' rule), beside it, or else
by its name alone anywhere under a ``labels`` folder when that name is unique and no image of
its folder was matched by the rules before; names match regardless of case (``Sheet_A.png``
with ``sheet_a.txt``). A label file that matches no image, or several, is rejected with its
reason; an image without a label file is a negative sample.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from ..errors import InputError
from .images import IMAGE_SUFFIXES
from .records import (
    ReadResult,
    Reject,
    Rules,
    check_boxes,
    display_path,
    image_facts,
    leaves_dataset,
    make_record,
    prefetch_images,
    read_text,
)

NOT_LABELS = ("classes.txt", "readme.txt")
NAME_FILES = ("data.yaml", "classes.txt", "obj.names")  # obj.names: CVAT's YOLO 1.1 export


def yolo_names(path: Path) -> tuple[list[str], Path]:
    """Class names and the dataset root from data.yaml, classes.txt or obj.names (one name a
    line), a file or the folder holding one. A
    ``path`` in data.yaml that is no folder here (written on another machine) is ignored."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in NAME_FILES if (path / n).is_file()]
        path = found[0] if found else path / "classes.txt"
    src = display_path(path)
    text = read_text(path, src)
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise InputError(f"{src}: malformed YAML{where}") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            names = {
                int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in names.items()
            }
            if not all(isinstance(k, int) and not isinstance(k, bool) for k in names):
                raise InputError(f"{src}: 'names' keys must be class numbers 0, 1, ...")
            if sorted(names) != list(range(len(names))):
                raise InputError(f"{src}: 'names' must number the classes 0, 1, ... without gaps")
            names = [names[k] for k in sorted(names)]
        if not isinstance(names, list) or not names:
            raise InputError(f"{src}: no 'names' list of classes")
        if not all(isinstance(n, str | int | float) and not isinstance(n, bool) for n in names):
            raise InputError(f"{src}: 'names' must be a list of class names (strings)")
        root = path.parent
        if isinstance(data.get("path"), str) and (path.parent / data["path"]).is_dir():
            root = path.parent / data["path"]
        return [str(n) for n in names], root
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise InputError(f"{src}: no class names")
    return names, path.parent


def _walk(root: Path):
    """Every file below ``root`` (hidden folders skipped), relative, in a stable order. Broken
    symlinks are listed: reading them rejects the record with the reason."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            yield rel / name


def _is_image(rel: Path) -> bool:
    return rel.suffix.lower() in IMAGE_SUFFIXES


def _under(rel: Path, folder: str) -> int | None:
    """Index of the last path component named ``folder`` (any case), or None."""
    hits = [i for i, part in enumerate(rel.parts[:-1]) if part.lower() == folder]
    return hits[-1] if hits else None


def _layout(root: Path, images_root: Path | None):
    """``(images, labels, base)``: image paths, label paths relative to ``root``, and the
    folder that record ids are relative to."""
    files = list(_walk(root))
    texts = [f for f in files if f.suffix.lower() == ".txt" and f.name.lower() not in NOT_LABELS]
    if images_root:
        base = Path(images_root)
        images = [base / f for f in _walk(base) if _is_image(f)]
        return images, [f for f in texts if _under(f, "labels") is not None], base
    rels = [f for f in files if _is_image(f) and _under(f, "images") is not None]
    if not rels:  # no images folder: the flat layouts (CVAT's obj_train_data, a bare folder)
        rels = [f for f in files if _is_image(f) and _under(f, "labels") is None]
    folders = {f.parent for f in rels}
    labels = [f for f in texts if _under(f, "labels") is not None or f.parent in folders]
    tops = {f.parts[: _under(f, "images") + 1] for f in rels if _under(f, "images") is not None}
    base = root.joinpath(*next(iter(tops))) if len(tops) == 1 else root
    return [root / f for f in rels], labels, base


def _candidates(img: Path, root: Path, base: Path) -> list[str]:
    """Where an image's label file is looked for, as lower-case paths relative to ``root``:
    Ultralytics' rule (the last ``images`` folder becomes ``labels``), ``labels/`` mirroring
    the images folder, and beside the image."""
    out = []
    if img.is_relative_to(root):
        rel = img.relative_to(root).with_suffix(".txt")
        i = _under(rel, "images")
        if i is not None:
            parts = list(rel.parts)
            parts[i] = "labels"
            out.append(Path(*parts).as_posix().lower())
        out.append(rel.as_posix().lower())
    if img.is_relative_to(base):
        out.append(("labels" / img.relative_to(base).with_suffix(".txt")).as_posix().lower())
    return out


def match_labels(images: list[Path], labels: list[Path], root: Path, base: Path):
    """``({image: label path or None}, [(label path, reason)])``: each image's label file and
    the label files that match no image, or several (module docstring)."""
    by_path: dict[str, list[Path]] = {}
    for lab in labels:
        by_path.setdefault(lab.as_posix().lower(), []).append(lab)
    found: dict[Path, Path | None] = {}
    claims: dict[Path, list[Path]] = {}
    for img in images:
        found[img] = None
        for key in _candidates(img, root, base):
            hits = by_path.get(key, [])
            if hits:
                exact = [h for h in hits if h.stem == img.stem]
                lab = (exact or hits)[0]
                found[img] = lab
                claims.setdefault(lab, []).append(img)
                break
    free = [lab for lab in labels if lab not in claims]
    by_stem: dict[str, list[Path]] = {}
    for lab in free:
        by_stem.setdefault(lab.stem.lower(), []).append(lab)
    # by name alone only in a folder whose images the structure matched none of (a flat
    # images/ with labels/train/): beside matched images, an image without its label is a
    # negative, never given another folder's label of the same name
    mirrored = {img.parent for img in images if found[img] is not None}
    unlabelled: dict[str, list[Path]] = {}
    for img in images:
        if found[img] is None and img.parent not in mirrored:
            unlabelled.setdefault(img.stem.lower(), []).append(img)
    for stem, labs in by_stem.items():
        if len(labs) == 1 and len(unlabelled.get(stem, [])) == 1:
            img = unlabelled[stem][0]
            found[img] = labs[0]
            claims.setdefault(labs[0], []).append(img)
    problems = []
    for lab in labels:
        imgs = claims.get(lab, [])
        if not imgs:
            stem = lab.stem.lower()
            many = len(unlabelled.get(stem, [])) > 1 or len(by_stem.get(stem, [])) > 1
            why = "several images or label files share its name" if many else "no image"
            problems.append(
                (
                    lab,
                    f"label file matches no image ({why}); images are read from "
                    "the images folders (or `images`), named like the label file",
                )
            )
        elif len(imgs) > 1:
            names = ", ".join(display_path(i) for i in imgs)
            problems.append((lab, f"label file matches several images: {names}"))
            for img in imgs:
                found[img] = lab  # each of them is rejected with the reason below
    return found, problems


def _boxes(lines, names, facts, src, rec) -> list:
    raw = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fld = f"line {n}"
        parts = line.split()
        if len(parts) != 5:
            raise Reject(src, rec, fld, f"expected 'class cx cy w h', got {line!r}")
        try:
            cls = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError:
            raise Reject(src, rec, fld, f"non-number in {line!r}") from None
        if not 0 <= cls < len(names):
            raise Reject(src, rec, fld + ".class", f"class {cls} not in 0..{len(names) - 1}")
        if not all(math.isfinite(v) for v in (cx, cy, w, h)):
            raise Reject(src, rec, fld + ".bbox", f"non-finite value in {line!r}")
        W, H = facts.width, facts.height
        box = [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]
        raw.append((fld, names[cls], box))
    return raw


def read_yolo(path: Path, rules: Rules, images_root: Path | None = None) -> ReadResult:
    """YOLO txt (module docstring): ``class cx cy w h`` lines normalised to 0-1, class names in
    data.yaml or classes.txt."""
    names, root = yolo_names(path)
    if images_root and not Path(images_root).is_dir():
        raise InputError(f"{display_path(Path(images_root))}: no images folder")
    images, labels, base = _layout(root, images_root)
    if not images:
        raise InputError(f"{display_path(root)}: no images (looked for an images folder)")
    found, problems = match_labels(images, labels, root, base)
    several = {lab: why for lab, why in problems if "several images" in why}
    out = ReadResult()
    for lab, why in problems:
        if lab not in several:
            out.rejects.append(Reject(display_path(root / lab), lab.as_posix(), "image", why).row())
    prefetch_images(
        base, [str(p.relative_to(base)) for p in images if p.is_relative_to(base)], rules
    )
    for img in images:
        lab = found[img]
        label_file = root / lab if lab is not None else None
        src = display_path(label_file) if label_file else display_path(img)
        rec = img.relative_to(base).as_posix() if img.is_relative_to(base) else str(img)
        try:
            if lab in several:
                raise Reject(src, rec, "image", several[lab])
            dataset = Path(images_root) if images_root else root
            if leaves_dataset(img, dataset) and os.path.exists(img):
                raise Reject(
                    src,
                    rec,
                    "image",
                    f"a symlink to {os.path.realpath(img)}, outside the dataset folder {dataset}",
                )
            if label_file and leaves_dataset(label_file, root) and os.path.exists(label_file):
                raise Reject(
                    src,
                    rec,
                    "label",
                    f"label file is a symlink to {os.path.realpath(label_file)}, outside the "
                    f"dataset folder {root}",
                )
            facts = image_facts(str(img), src, rec, "image", rules)
            lines = read_text(label_file, src).splitlines() if label_file else []
            boxes = check_boxes(_boxes(lines, names, facts, src, rec), facts, src, rec, rules)
        except (Reject, InputError) as r:
            out.rejects.append(
                r.row() if isinstance(r, Reject) else Reject(src, rec, "", str(r)).row()
            )
            continue
        out.records.append(make_record(src, rec, facts, boxes, None))
    return out
