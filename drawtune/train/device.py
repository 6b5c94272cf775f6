"""Which device a GPU stage runs on here: ``cuda`` when torch sees a GPU, else ``cpu`` (the
ms-swift flags differ)."""

from __future__ import annotations


def detect_device() -> str:
    """``cuda`` when a GPU is visible to this job, else ``cpu``."""
    import torch  # heavy: only the GPU stages and the commands that run a model need it

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_count(device: str) -> int:
    """GPUs torch sees (0 on CPU)."""
    if device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count()


def gpu_name(device: str) -> str | None:
    """The first GPU's name (None on CPU): what telemetry looks its peak up by."""
    if device == "cpu":
        return None
    import torch

    return torch.cuda.get_device_name(0)
