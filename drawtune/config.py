"""Config helpers shared by the workflow and the command line."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


def load_schema(path=SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def fill_defaults(obj, schema: dict, root: dict | None = None):
    """Copy of ``obj`` with every schema ``default`` filled in, through ``properties``,
    ``additionalProperties`` and ``$ref`` (Snakemake's validate only fills plain properties)."""
    root = root or schema
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    if not isinstance(obj, dict):
        return obj
    out = copy.deepcopy(obj)
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = fill_defaults(out[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in out:
            if key not in props:
                out[key] = fill_defaults(out[key], extra, root)
    return out


def base_model(cfg: dict) -> str:
    """The base model as swift is given it: ``tiny`` is the model the workflow builds under
    resources/ (rule build_tiny_model); anything else (hub id, folder, gs://) as configured."""
    base = cfg["model"]["base"]
    return f"resources/models/tiny-{cfg['model']['family']}" if base == "tiny" else base
