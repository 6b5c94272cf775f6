"""Records -> ms-swift JSONL in a model family's coordinate convention, plus manifest and
ground truth COCO."""

from __future__ import annotations

import json
from pathlib import Path

from .coords import ResizeSpec, model_frame, smart_resize, to_model

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


def vision_factor(family: str) -> int:
    """Pixels per visual token side: 28 for Qwen2.5-VL (patch 14), 32 for Qwen3-VL (patch 16)."""
    return 32 if family == "qwen3_vl" else 28


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


def dump_jsonl(rows, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n")


def load_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
