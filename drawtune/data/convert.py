"""Records -> ms-swift JSONL (boxes in a model family's coordinate convention, or the class
name), plus the manifest of image sizes and the ground truth as COCO."""

from __future__ import annotations

import json

from ..coords import ResizeSpec, model_frame, smart_resize, to_model, vision_factor
from ..jsonio import dump_jsonl, load_jsonl

FENCE = "```json\n{}\n```"


def answer_text(boxes: list[dict], family: str, width: int, height: int, spec: ResizeSpec) -> str:
    """The assistant answer: fenced JSON list in reading order (top-to-bottom, left-to-right)."""
    items = []
    for b in sorted(boxes, key=lambda b: (b["bbox"][1], b["bbox"][0], b["label"])):
        items.append(
            {"bbox_2d": to_model(b["bbox"], family, width, height, spec), "label": b["label"]}
        )
    return FENCE.format(json.dumps(items, ensure_ascii=False))


def swift_row(record: dict, family: str, prompt: str, spec: ResizeSpec) -> dict:
    answer = answer_text(record["boxes"], family, record["width"], record["height"], spec)
    return {
        "messages": [
            {"role": "user", "content": "<image>" + prompt},
            {"role": "assistant", "content": answer},
        ],
        "images": [record["image"]],
    }


def default_prompt(classes: list[str]) -> str:
    return f"Classify this engineering drawing. Answer with exactly one of: {', '.join(classes)}."


def class_row(record: dict, prompt: str) -> dict:
    """ms-swift training row: the image, the prompt, and the class name as the answer."""
    return {
        "messages": [
            {"role": "user", "content": "<image>" + prompt},
            {"role": "assistant", "content": record["label"]},
        ],
        "images": [record["image"]],
    }


def manifest_row(record: dict, family: str, spec: ResizeSpec) -> dict:
    w, h = record["width"], record["height"]
    fam_spec = ResizeSpec(spec.min_pixels, spec.max_pixels, vision_factor(family))
    rw, rh = smart_resize(w, h, fam_spec)
    fx, fy = model_frame(family, w, h, spec)
    return {
        "image": record["image"],
        "sha256": record["sha256"],
        "width": w,
        "height": h,
        "resized_width": rw,
        "resized_height": rh,
        "frame_width": fx,
        "frame_height": fy,
    }


def truth_coco(records: list[dict], classes: list[str]) -> dict:
    cat = {c: i + 1 for i, c in enumerate(classes)}
    coco = {
        "categories": [{"id": i, "name": c} for c, i in cat.items()],
        "images": [],
        "annotations": [],
    }
    for i, r in enumerate(records, start=1):
        coco["images"].append(
            {"id": i, "file_name": r["image"], "width": r["width"], "height": r["height"]}
        )
        for b in r["boxes"]:
            x1, y1, x2, y2 = b["bbox"]
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": i,
                    "category_id": cat[b["label"]],
                    "bbox": [x1, y1, round(x2 - x1, 3), round(y2 - y1, 3)],
                    "area": round((x2 - x1) * (y2 - y1), 3),
                    "iscrowd": 0,
                }
            )
    return coco


def convert_split(
    records_file,
    family: str,
    prompt: str,
    spec: ResizeSpec,
    jsonl_out,
    manifest_out,
    task: str = "detect",
) -> int:
    """One split as ms-swift rows: boxes in the family's coordinates, or the class name."""
    records = load_jsonl(records_file)
    if task == "classify":
        rows = [class_row(r, prompt) for r in records]
    else:
        rows = [swift_row(r, family, prompt, spec) for r in records]
    dump_jsonl(rows, jsonl_out)
    dump_jsonl([manifest_row(r, family, spec) for r in records], manifest_out)
    return len(records)
