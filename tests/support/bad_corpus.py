"""A corpus of bad (and good) inputs that the tests write themselves, one builder per class of
failure in issue 16; no binary fixture is committed. Every drawing differs in its pixels (a
dark square at a place given by ``k``), so that no two are the same image by accident."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

from PIL import Image

BOM = "\ufeff"


def drawing(path: Path, k: int, size=(200, 100)) -> Path:
    """A distinct grey drawing (its dark square depends on ``k``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("L", size, 255)
    x, y = (7 * k) % (size[0] - 10), (3 * k) % (size[1] - 10)
    im.paste(0, (x, y, x + 5 + k % 4, y + 5))
    im.save(path)
    return path


def png_bytes(k: int) -> bytes:
    buf = io.BytesIO()
    im = Image.new("L", (200, 100), 255)
    im.paste(0, (k, k, k + 9, k + 9))
    im.save(buf, format="PNG")
    return buf.getvalue()


def yolo_layouts(root: Path) -> dict:
    """A YOLO dataset mixing the Ultralytics and Roboflow layouts, a label named in another
    case, a label matching no image and a broken symlink among the images. Returns the
    expected record ids with their box counts, and the expected rejects (record -> field)."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("names: [view, note, title_block]\n")
    drawing(root / "images" / "train" / "a.png", 1)  # Ultralytics: images/train, labels/train
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    drawing(root / "images" / "train" / "Sheet_A.png", 2)  # case differs from its label
    (root / "labels" / "train" / "sheet_a.txt").write_text("1 0.3 0.3 0.1 0.1\n")
    drawing(root / "images" / "val" / "b.png", 3)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "b.txt").write_text("2 0.5 0.5 0.5 0.5\n0 0.2 0.2 0.1 0.1\n")
    drawing(root / "images" / "val" / "negative.png", 4)  # no label file: a negative
    (root / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image
    os.symlink(root / "images" / "gone.png", root / "images" / "train" / "broken.png")
    return {
        "records": {
            "train/a.png": 1,
            "train/Sheet_A.png": 1,
            "val/b.png": 2,
            "val/negative.png": 0,
        },
        "rejects": {"labels/train/ghost.txt": "image", "train/broken.png": "image"},
    }


def roboflow(root: Path) -> dict:
    """Roboflow's export: ``train/images`` + ``train/labels``, ``valid/...``; and a flat
    ``images/`` folder whose labels sit in ``labels/train``."""
    (root / "data.yaml").parent.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\nnc: 3\n"
        "names: ['view', 'note', 'title_block']\n"
    )
    for split, k in (("train", 11), ("valid", 12)):
        drawing(root / split / "images" / f"r{k}.png", k)
        (root / split / "labels").mkdir(parents=True)
        (root / split / "labels" / f"r{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return {"train/images/r11.png": 1, "valid/images/r12.png": 1}


def flat_images(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("view\nnote\ntitle_block\n")
    for k in (21, 22):
        drawing(root / "images" / f"f{k}.png", k)
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"f{k}.txt").write_text("2 0.5 0.5 0.2 0.2\n")
    return {"f21.png": 1, "f22.png": 1}


def cvat_yolo(root: Path) -> dict:
    """CVAT's YOLO 1.1 export: ``obj.names``, ``train.txt`` listing the images, and
    ``obj_train_data/`` with each label file beside its image."""
    (root / "obj_train_data").mkdir(parents=True)
    (root / "obj.names").write_text("view\nnote\ntitle_block\n")
    (root / "obj.data").write_text("classes = 3\nnames = data/obj.names\n")
    (root / "train.txt").write_text("data/obj_train_data/k31.png\ndata/obj_train_data/k32.png\n")
    for k in (31, 32):
        drawing(root / "obj_train_data" / f"k{k}.png", k)
        (root / "obj_train_data" / f"k{k}.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    return {"obj_train_data/k31.png": 1, "obj_train_data/k32.png": 1}


def coco_doc(folder: Path, n: int, first: int = 0, boxes_per_image: int = 1) -> dict:
    """A good COCO file's content with ``n`` drawings under ``folder/images``."""
    images, anns = [], []
    for i in range(n):
        name = f"images/c{first + i}.png"
        drawing(folder / name, 40 + first + i)
        images.append({"id": i + 1, "file_name": name, "width": 200, "height": 100})
        for b in range(boxes_per_image):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 1 + b % 2,
                    "bbox": [10 + 5 * b, 10, 30, 20],
                }
            )
    cats = [{"id": 1, "name": "view"}, {"id": 2, "name": "note"}]
    return {"images": images, "annotations": anns, "categories": cats}


def write_json(path: Path, doc, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((BOM if bom else "") + json.dumps(doc, indent=1), encoding="utf-8")
    return path


def coco_duplicate_ids_and_bad_types(folder: Path, n: int = 6) -> dict:
    """``n`` drawings: images[1] and images[2] share id 2; images[3]'s annotation has a string
    bbox; images[4]'s width is a list; the others are good. Returns the expected outcome."""
    doc = coco_doc(folder, n, first=500)
    doc["images"][2]["id"] = 2
    doc["annotations"][2]["image_id"] = 2
    doc["annotations"][3]["bbox"] = "10,10,30,20"
    doc["images"][4]["width"] = [200]
    write_json(folder / "annotations.json", doc, bom=True)
    return {
        "kept": sorted(f"images[{i}] (id {i + 1})" for i in (0, *range(5, n))),
        "rejects": {
            "images[1] (id 2)": "id",
            "images[2] (id 2)": "id",
            "images[3] (id 4)": "annotations[3].bbox",
            "images[4] (id 5)": "width",
        },
    }


def same_image_two_datasets(a: Path, b: Path) -> None:
    """Two COCO datasets that hold the same drawing (``c0.png``) with different boxes, plus
    drawings of their own."""
    write_json(a / "annotations.json", coco_doc(a, 5, first=0))
    doc = coco_doc(b, 5, first=100)
    drawing(b / "images" / "c0.png", 40)  # the same pixels as a's c0.png
    doc["images"][0]["file_name"] = "images/c0.png"
    doc["annotations"][0]["bbox"] = [50, 50, 40, 30]
    write_json(b / "annotations.json", doc)


def voc_standard(root: Path, n: int = 2) -> None:
    """The VOC devkit / CVAT layout: ``Annotations/*.xml`` beside ``JPEGImages/``."""
    (root / "Annotations").mkdir(parents=True)
    for k in range(n):
        drawing(root / "JPEGImages" / f"v{k}.png", 60 + k)
        (root / "Annotations" / f"v{k}.xml").write_text(
            BOM + f"<annotation><folder>VOC2012</folder><filename>v{k}.png</filename>"
            "<size><width>200</width><height>100</height><depth>1</depth></size>"
            "<object><name>view</name><bndbox><xmin>20</xmin><ymin>10</ymin><xmax>120</xmax>"
            "<ymax>80</ymax></bndbox></object></annotation>",
            encoding="utf-8",
        )


def labelme_windows(root: Path) -> None:
    """LabelMe files as Windows saves them: ``..\\images\\x.png``, and one with only the
    embedded ``imageData`` (its ``imagePath`` names a file that is not there)."""
    drawing(root / "images" / "w0.png", 70)
    shape = {"label": "view", "points": [[20, 10], [120, 80]], "shape_type": "rectangle"}
    write_json(
        root / "json" / "w0.json",
        {"shapes": [shape], "imagePath": "..\\images\\w0.png", "imageData": None},
        bom=True,
    )
    write_json(
        root / "json" / "w1.json",
        {
            "shapes": [shape],
            "imagePath": "C:\\Users\\me\\Desktop\\w1.png",
            "imageData": base64.b64encode(png_bytes(5)).decode(),
            "imageWidth": 200,
            "imageHeight": 100,
        },
    )


def no_boxes(folder: Path) -> None:
    """A COCO dataset whose drawings all lost their boxes."""
    doc = coco_doc(folder, 3, first=200)
    doc["annotations"] = []
    write_json(folder / "annotations.json", doc)


def misspelled_key(folder: Path) -> None:
    doc = coco_doc(folder, 2, first=300)
    doc["annotation"] = doc.pop("annotations")
    write_json(folder / "annotations.json", doc)
