"""The price of a GPU hour the leaderboard's cost estimate uses."""

from __future__ import annotations

from pathlib import Path

import yaml

VERTEX = "profiles/vertex/vertex.yaml"


def gpu_hour_price(configured: float | None, vertex=VERTEX) -> tuple[float | None, str]:
    """``(USD per GPU hour, where it comes from)``: ``report.usd_per_gpu_hour`` when set, else
    the on-demand price of the Vertex AI profile's training machine per GPU (the price
    ``drawtune estimate --profile profiles/vertex`` uses); ``(None, ...)`` when neither is
    known."""
    if configured is not None:
        return float(configured), "report.usd_per_gpu_hour"
    f = Path(vertex)
    if f.is_file():
        machine = ((yaml.safe_load(f.read_text()) or {}).get("machines") or {}).get(
            "train_adapter", {}
        )
        usd = machine.get("usd_per_hour")
        if usd is not None:
            gpus = int(machine.get("accelerator_count", 1)) or 1
            kind = machine.get("machine_type", "the training machine")
            return float(usd) / gpus, f"{kind} on demand, {vertex}"
    return None, "no price known"
