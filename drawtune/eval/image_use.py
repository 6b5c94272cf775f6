"""Does a detector's answer follow the drawing? A model that writes the same answer for every
sheet (the answer prior) still finds the classes that sit at a fixed place; what it cannot do is
give each sheet's own number of objects. This compares, per class, how often the answer's count
is the true count against a constant answer, the most common true count (:func:`image_use`)."""

from __future__ import annotations

import json
from collections import Counter


def _counts_by_image(truth: dict) -> tuple[list[str], dict[str, Counter]]:
    names = {c["id"]: c["name"] for c in truth["categories"]}
    by_id = {img["id"]: img["file_name"] for img in truth["images"]}
    counts: dict[str, Counter] = {by_id[i]: Counter() for i in by_id}
    for a in truth["annotations"]:
        counts[by_id[a["image_id"]]][names[a["category_id"]]] += 1
    return [names[k] for k in sorted(names)], counts


def image_use(details: list[dict], truth: dict) -> dict:
    """Per class: ``count_exact``, the share of test images whose answer has the class's true
    number of boxes; ``prior_exact``, the same share for a constant answer with the most common
    true count; ``gain``, their difference (above 0: the counts follow the drawings). Also
    ``distinct_answers``, the share of different box lists among the parsed answers (1.0: every
    answer is its own; near 0: one answer for all). Unparsed answers count as no boxes."""
    classes, truth_counts = _counts_by_image(truth)
    predicted: dict[str, Counter] = {}
    answers = []
    for d in details:  # one per test drawing, named by the test split's file name
        key = d["image"]
        if key not in truth_counts:
            raise ValueError(f"scoring detail for {key!r}: no such drawing in the test split")
        boxes = d.get("boxes") or []
        predicted[key] = Counter(b["label"] for b in boxes)
        if d.get("parsed"):
            answers.append(
                json.dumps(sorted((b["label"], [round(v) for v in b["bbox"]]) for b in boxes))
            )
    images = sorted(truth_counts)
    per_class = {}
    for c in classes:
        true = [truth_counts[i][c] for i in images]
        pred = [predicted.get(i, Counter())[c] for i in images]
        mode = Counter(true).most_common(1)[0][0] if true else 0
        exact = sum(t == p for t, p in zip(true, pred, strict=True)) / max(1, len(images))
        prior = sum(t == mode for t in true) / max(1, len(images))
        per_class[c] = {
            "count_exact": round(exact, 4),
            "prior_exact": round(prior, 4),
            "gain": round(exact - prior, 4),
        }
    return {
        "n_images": len(images),
        "distinct_answers": round(len(set(answers)) / len(answers), 4) if answers else 0.0,
        "per_class": per_class,
    }
