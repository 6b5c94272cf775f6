"""How much of the learning proof's view task is reading the sheet's layout (issue 21)?

The synthetic generator (drawtune.data.synth.draw_sheet) puts a sheet's views in a grid whose
cells follow from how many views it has. This oracle knows each test sheet's layout (the number
of views, and which cell holds a plain, a section or a detail view) and nothing else: it answers
every view with the mean box of that (number, cell, kind) over the training sheets. The share
of its boxes with IoU >= 0.5 is what a model that reads the layout, and no more, can reach.

    python bench/layout_oracle.py [--n 1500] [--width 640] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drawtune.data.synth import draw_sheet  # noqa: E402

VIEWS = ("view", "section_view", "detail_view")


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def layouts(n: int, width: int, seed: int) -> list[list[tuple[str, list]]]:
    """Each sheet's views in grid order (the generator's order): ``[(kind, box), ...]``."""
    out = []
    for i in range(n):
        _, boxes = draw_sheet(seed, i, width)
        out.append([(label, box) for label, box in boxes if label in VIEWS])
    return out


def oracle(train, test) -> dict:
    """Per view class: the test boxes, and the share the layout's mean box finds at IoU 0.5."""
    sums: dict = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0, 0])
    for sheet in train:
        for k, (kind, box) in enumerate(sheet):
            s = sums[(len(sheet), k, kind)]
            for j in range(4):
                s[j] += box[j]
            s[4] += 1
    found: dict = defaultdict(lambda: [0, 0])
    for sheet in test:
        for k, (kind, box) in enumerate(sheet):
            s = sums.get((len(sheet), k, kind))
            f = found[kind]
            f[1] += 1
            if s and iou([v / s[4] for v in s[:4]], box) >= 0.5:
                f[0] += 1
    return {kind: {"boxes": t, "found_at_iou50": round(h / t, 3)} for kind, (h, t) in found.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1500, help="sheets; the last third is the test")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sheets = layouts(a.n, a.width, a.seed)
    cut = a.n * 2 // 3
    for kind, r in sorted(oracle(sheets[:cut], sheets[cut:]).items()):
        print(f"{kind}: {r['found_at_iou50']:.1%} of {r['boxes']} boxes at IoU >= 0.5")


if __name__ == "__main__":
    main()
