"""The workflow's config, one way for the rules and the command line: validated against
config/schema.yaml, defaults filled, cross-field checks, and each model's resolved settings."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path

import jsonschema
import yaml

from . import paths
from .data.convert import default_prompt
from .data.labels import classes_of
from .data.leakage import check_pattern
from .data.synth_classify import SYNTH_CLASSES
from .errors import ConfigError


def load_schema(path=paths.SCHEMA) -> dict:
    return yaml.safe_load(Path(path).read_text())


def read_yaml(path) -> dict:
    """A config file; a YAML syntax error is a ConfigError naming the file, line and column."""
    try:
        cfg = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig"))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise ConfigError(f"{path}{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML syntax error: {e}") from None
    if cfg is not None and not isinstance(cfg, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys, not {type(cfg).__name__}")
    return cfg or {}


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def schema_problem(cfg: dict, schema: dict | None = None) -> str | None:
    """The config's first problem against the schema as one line (None: it conforms): an
    unknown key with the closest known one, else the error jsonschema ranks first."""
    schema = schema or load_schema()
    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    for e in errors:
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            known = list(e.schema.get("properties", {}))
            unknown = sorted(k for k in e.instance if k not in known)
            if unknown:
                where = "/".join(str(p) for p in e.absolute_path)
                key = f"{where}/{unknown[0]}" if where else unknown[0]
                close = difflib.get_close_matches(unknown[0], known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return f"unknown key {key!r}{hint}; known keys here: {', '.join(known)}"
    e = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
    return f"{where}: {_short(e.message)}"


def check_config(cfg: dict, source: str) -> None:
    """ConfigError, one line naming ``source`` (the config files), when ``cfg`` does not pass
    the schema (rules/common.smk; Snakemake's own message would print the whole schema)."""
    problem = schema_problem(cfg)
    if problem:
        raise ConfigError(f"{source}: {problem}")


def load_config(path) -> dict:
    """The workflow's config file, validated against config/schema.yaml, defaults filled and
    cross-field checks made (rules/common.smk makes the same checks)."""
    cfg = read_yaml(path)
    schema = load_schema()
    problem = schema_problem(cfg, schema)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:
        return completed(cfg, schema)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def completed(cfg: dict, schema: dict | None = None) -> dict:
    """A config that passed the schema with its defaults filled in and the cross-field checks
    made (ValueError names the experiment): what rules/common.smk and :func:`load_config` use."""
    cfg = fill_defaults(cfg, schema or load_schema())
    check_experiments(cfg)
    check_base_models(cfg)
    check_pattern(cfg["leakage"]["name_pattern"])
    return cfg


def defaults(key: str) -> dict:
    """The schema's defaults of one top-level block (``validation``, ``predict``...)."""
    return fill_defaults({}, load_schema())[key]


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


def detect_datasets(cfg: dict) -> list[str]:
    """Datasets pooled into the detection data (task detect, the default)."""
    return sorted(n for n, d in cfg["datasets"].items() if d.get("task", "detect") == "detect")


def train_only_datasets(cfg: dict) -> list[str]:
    """Detection datasets with ``holdout: false``: every drawing of them goes to train."""
    return [n for n in detect_datasets(cfg) if cfg["datasets"][n].get("holdout") is False]


def check_holdout(cfg: dict) -> None:
    """``holdout: false`` is for detection datasets, and one of them must be held out."""
    for name, ds in sorted(cfg["datasets"].items()):
        if ds.get("task") == "classify" and ds.get("holdout") is False:
            raise ValueError(
                f"dataset {name}: holdout false is for task detect (a classification "
                "experiment learns and is scored on its one dataset)"
            )
    detect = detect_datasets(cfg)
    if detect and set(train_only_datasets(cfg)) == set(detect):
        raise ValueError(
            f"datasets {', '.join(detect)}: every detection dataset has holdout false, so no "
            "drawing is held out for validation or test; keep holdout true on at least one"
        )


def models(cfg: dict) -> list[str]:
    """Every model the workflow scores: ``base`` (the untrained base model on the detection
    data, when there is any) and each experiment."""
    return (["base"] if detect_datasets(cfg) else []) + sorted(cfg["experiments"])


def classify_classes(ds: dict) -> list[str]:
    """A classification dataset's closed class list: configured, the generator's for a
    synthetic dataset (its CSV does not exist before the run), else read from the data."""
    if "synthetic" in ds and not ds.get("classes"):
        return list(SYNTH_CLASSES)
    return classes_of(ds)


def settings(cfg: dict, name: str) -> dict:
    """What one model (an experiment, or ``base``) is trained and evaluated with: the
    experiment's own keys over the global ``model`` and ``prompt``.

    Adds ``task``, ``family``, ``base`` (as configured), ``base_path`` (as swift is given it),
    ``min_pixels``, ``max_pixels``, ``prompt``, ``classes`` and for a classification experiment
    its ``dataset``. ``tuner: none`` means the base model is scored untrained."""
    if name == "base":
        exp = {"tuner": "none", "task": "detect"}
    elif name in cfg["experiments"]:
        exp = cfg["experiments"][name]
    else:
        raise KeyError(f"unknown experiment {name!r}; config has {', '.join(models(cfg))}")
    m = cfg["model"]
    out = dict(exp)
    out["task"] = exp.get("task", "detect")
    if exp.get("init_from"):  # another experiment's trained model, with its family and size
        src = settings(cfg, exp["init_from"]) if exp["init_from"] != name else {}
        m = {**m, **{k: src.get(k, m[k]) for k in ("family", "min_pixels", "max_pixels")}}
        m["base"] = str(paths.merged(exp["init_from"]))
    for key in ("family", "base", "min_pixels", "max_pixels"):
        out[key] = exp.get(key, m[key])
    out["base_path"] = paths.tiny_model(out["family"]) if out["base"] == "tiny" else out["base"]
    if out["task"] == "classify":
        ds = cfg["datasets"][exp["dataset"]]
        out["classes"] = classify_classes(ds)
        out["prompt"] = exp.get("prompt") or ds.get("prompt") or default_prompt(out["classes"])
    else:
        out["classes"] = list(cfg["classes"])
        out["prompt"] = exp.get("prompt", cfg["prompt"])
    return out


def origin(cfg: dict, name: str) -> str:
    """The experiment whose base model an ``init_from`` chain starts from (``name`` itself
    when it has no ``init_from``)."""
    while (cfg["experiments"].get(name) or {}).get("init_from"):
        name = cfg["experiments"][name]["init_from"]
    return name


def check_init_from(cfg: dict) -> None:
    """``init_from`` names another trained experiment of the same task, without a cycle, and
    the experiment sets no base, family or image size of its own that differ from it."""
    exps = cfg["experiments"]
    for name, exp in sorted(exps.items()):
        src = exp.get("init_from")
        if src is None:
            continue
        if src not in exps:
            known = ", ".join(sorted(exps))
            raise ValueError(f"experiment {name}: init_from {src!r} is no experiment ({known})")
        seen = [name]
        while src is not None:
            if src in seen:
                raise ValueError(
                    f"experiment {name}: init_from goes round: {' -> '.join([*seen, src])}"
                )
            seen.append(src)
            src = exps[src].get("init_from")
        src = exp["init_from"]
        if exps[src].get("tuner", "lora") == "none":
            raise ValueError(f"experiment {name}: init_from {src} has tuner none (nothing trained)")
        if exps[src].get("task", "detect") != exp.get("task", "detect"):
            raise ValueError(f"experiment {name}: init_from {src} has another task")
        if "base" in exp:
            raise ValueError(f"experiment {name}: init_from and base both say where to start")
        s, t = settings(cfg, src), exp
        for key in ("family", "min_pixels", "max_pixels"):
            if key in t and t[key] != s[key]:
                raise ValueError(
                    f"experiment {name}: {key} {t[key]} differs from init_from {src}'s {s[key]}"
                )


def check_experiments(cfg: dict) -> None:
    """Cross-field checks the schema cannot express; ValueError with a clear message."""
    check_init_from(cfg)
    check_holdout(cfg)
    detect = set(detect_datasets(cfg))
    for name, exp in sorted(cfg["experiments"].items()):
        task = exp.get("task", "detect")
        chosen = exp.get("train_datasets") or []
        if chosen and task != "detect":
            raise ValueError(f"experiment {name}: train_datasets is for task detect")
        for ds in chosen:
            if ds not in detect:
                raise ValueError(
                    f"experiment {name}: train_datasets names {ds!r}, not a detection dataset "
                    f"({', '.join(sorted(detect))})"
                )
        if task == "classify":
            ds = exp.get("dataset")
            if ds not in cfg["datasets"]:
                raise ValueError(
                    f"experiment {name}: task classify needs `dataset`, one of the datasets "
                    f"with task classify (got {ds!r})"
                )
            if cfg["datasets"][ds].get("task") != "classify":
                raise ValueError(f"experiment {name}: dataset {ds} has task detect, not classify")
            if "tiling" in exp:
                raise ValueError(f"experiment {name}: tiling is for task detect (boxes on tiles)")
        elif "dataset" in exp:
            raise ValueError(
                f"experiment {name}: `dataset` is for task classify; a detection experiment "
                "trains on every detection dataset"
            )
        elif not detect_datasets(cfg):
            raise ValueError(f"experiment {name}: task detect but no dataset has task detect")


def is_local_path(base: str) -> bool:
    """Whether a base model names a folder on this machine rather than a hub id (``org/name``,
    or a bare name) or a gs:// path: absolute, ``./``, ``../`` or ``~``, a trailing slash, more
    than one slash, or an existing path."""
    if base == "tiny" or "://" in base:
        return False
    if base.startswith(("/", "./", "../", "~")) or base.endswith("/") or base.count("/") > 1:
        return True
    return Path(base).exists()


def check_base_models(cfg: dict) -> None:
    """ValueError naming the key when a base model is a local folder that does not exist: found
    at startup, not when ``swift sft`` fails after validation and conversion ran."""
    bases = [("model.base", cfg["model"]["base"])]
    for name, exp in sorted(cfg["experiments"].items()):
        if "base" in exp:
            bases.append((f"experiments.{name}.base", exp["base"]))
    for key, base in bases:
        if not is_local_path(str(base)):
            continue
        path = Path(str(base)).expanduser()
        if not path.exists():
            raise ValueError(
                f"{key}: local model folder {base} does not exist (relative paths start from "
                "the workflow's folder; a hub id is org/name, a bucket path gs://...)"
            )
        if not path.is_dir():
            raise ValueError(f"{key}: {base} is a file; a local base model is a folder")
