"""The split ledger (``resources/splits/ledger.json``): where every drawing went, so that adding
drawings never moves an existing one (drawtune.data.assign)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..jsonio import read_json, write_json

log = logging.getLogger("drawtune")


def ledger_settings(val: float, test: float, salt: str) -> dict:
    return {"val": val, "test": test, "salt": salt}


def read_ledger(path, settings: dict) -> dict:
    """Content hash -> split of every drawing split before with the same fractions and salt;
    empty when there is none, or when those settings changed (a new split is drawn)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except Exception:  # noqa: BLE001 - a damaged ledger is redrawn, and the log says so
        log.warning("split ledger %s cannot be read: the split is drawn anew", path)
        return {}
    if data.get("settings") != settings:
        log.info("split settings changed since the ledger %s was written: drawn anew", path)
        return {}
    return dict(data.get("splits") or {})


def write_ledger(path, settings: dict, ledger: dict, pool) -> None:
    """The ledger with the assignments of ``pool`` (drawtune.data.split.Pool) added; drawings
    held out are not recorded."""
    merged = dict(ledger)
    for r, s in zip(pool.kept, pool.assignment.where, strict=True):
        if s is not None:
            merged.setdefault(r["sha256"], s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_json({"settings": settings, "splits": dict(sorted(merged.items()))}, tmp)
    tmp.replace(path)
