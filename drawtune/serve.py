"""Serving a trained experiment and asking it about a few drawings.

``drawtune serve`` starts ms-swift's OpenAI-compatible server (``swift deploy``) either for one
experiment's merged model or, with ``--lora``, for the base model with several LoRA adapters
(one served model name per experiment). It uses the same family, image-size bounds and
coordinate convention as training, so a client gets the boxes the score rule would see.

``drawtune predict IMAGE...`` answers for a few drawings without a server: it writes them as a
one-off ms-swift JSONL, runs the same ``swift infer`` command as the predict rule, maps the
answers back to the drawings' pixels and draws the boxes over copies of them.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from . import paths
from .config import settings
from .coords import ResizeSpec
from .data.images import ImageProblem, inspect
from .data.tiling import image_views, model_tiling
from .errors import DrawtuneError
from .eval.calibrate import MODEL_FILE, read_confidence
from .eval.confidence import DEFAULT_VARIANT, NO_SCORES, token_entries
from .eval.merge_tiles import TileMerge, merged_answer
from .eval.parse_class import parse_class
from .eval.score import box_rows, kept_rows, scored_boxes
from .jsonio import dump_jsonl, load_jsonl
from .report.drawings import draw_predicted
from .train import swift_cmd
from .train.job_plan import vision_varlen_for
from .train.run import resolve_command


class ServeError(DrawtuneError):
    """A problem the user can fix (unknown experiment, missing model, unreadable image)."""


@dataclass
class Target:
    """What to serve: a model directory or hub id, plus named adapters on it."""

    model: str
    adapters: dict[str, str]
    names: list[str]  # the model names a client asks for
    # family, image-size bounds, prompt and task the models were trained with
    settings: dict = field(default_factory=dict)


def resolve(cfg: dict, experiments: list[str], lora: bool = False, root=".") -> Target:
    """Where each experiment's trained weights are, as the workflow writes them."""
    known = sorted(cfg["experiments"])
    for e in experiments:
        if e != "base" and e not in known:
            raise ServeError(f"unknown experiment {e!r}; config has {', '.join(known)} and base")
    if not experiments:
        raise ServeError("name at least one experiment")
    if not lora:
        if len(experiments) != 1:
            raise ServeError("several experiments at once need --lora (adapters on one base)")
        (e,) = experiments
        s = settings(cfg, e)
        if s["tuner"] == "none":
            return Target(s["base_path"], {}, [e], s)
        merged = paths.merged(e, root)
        if not (merged / "config.json").is_file():
            raise ServeError(f"{merged} is missing: run `snakemake {merged}` first")
        return Target(str(merged), {}, [e], s)
    adapters = {}
    first = settings(cfg, experiments[0])
    shared = ("base_path", "family", "min_pixels", "max_pixels", "task")
    for e in experiments:
        s = settings(cfg, e)
        if any(s[k] != first[k] for k in shared):
            raise ServeError(
                f"--lora serves adapters on one base model: {experiments[0]} and {e} differ in "
                + ", ".join(k for k in shared if s[k] != first[k])
            )
        if s["tuner"] not in ("lora", "qlora"):
            raise ServeError(
                f"experiment {e!r} has tuner {s['tuner']!r}; --lora serves LoRA adapters"
            )
        path = paths.adapter(e, root)
        if not (path / "adapter_config.json").is_file():
            raise ServeError(f"{path} is missing: run `snakemake {path}` first")
        adapters[e] = str(path)
    return Target(first["base_path"], adapters, list(experiments), first)


def deploy_command(
    *,
    family: str,
    target: Target,
    host: str,
    port: int,
    max_new_tokens: int,
    device: str = "cpu",
) -> list[str]:
    """``swift deploy`` for a target; the served name of a merged model is its experiment."""
    cmd = ["swift", "deploy", *swift_cmd.model_args(family, target.model, device)]
    cmd += ["--infer_backend", "transformers", "--host", host, "--port", str(port)]
    cmd += ["--max_new_tokens", str(max_new_tokens), "--temperature", "0"]
    if target.adapters:
        cmd += ["--adapters", *(f"{k}={v}" for k, v in sorted(target.adapters.items()))]
    else:
        cmd += ["--served_model_name", target.names[0]]
    cmd += ["--verbose", "false", "--log_interval", "-1"]
    return cmd


def spec_of(s: dict) -> ResizeSpec:
    """Smart-resize bounds of a model's settings (``drawtune.config.settings``)."""
    return ResizeSpec(min_pixels=s["min_pixels"], max_pixels=s["max_pixels"])


def serve_env(s: dict, model: str, device: str = "cpu") -> dict:
    env = swift_cmd.swift_env(s["family"], s["min_pixels"], s["max_pixels"], model, device)
    return swift_cmd.child_env(env)


def confidence_of(experiment: str, model_dir=None, root=".") -> dict | None:
    """The box score and threshold a model was calibrated with: a model folder's own
    ``drawtune-confidence.json`` (a model given by path), else the workflow's
    ``results/train/<experiment>/confidence.json``; None when there is none."""
    if model_dir is not None:
        return read_confidence(Path(model_dir) / MODEL_FILE)
    return read_confidence(paths.confidence(experiment, root))


def answer(
    text: str | None,
    s: dict,
    width: int,
    height: int,
    logprobs=None,
    confidence: dict | None = None,
    threshold: float | None = None,
) -> dict:
    """One answer read as the model's task: boxes in the drawing's pixels, or a class.

    A detection answer with ``logprobs`` (ms-swift's field, or the OpenAI client's
    ``choice.logprobs``) scores its boxes with the model's ``confidence`` (its box score and
    threshold): ``boxes`` are those scored at or above the threshold (``threshold`` overrides
    it), ``raw_boxes`` all of them. Without log-probabilities every box is kept unscored
    (``scores: none``)."""
    if s["task"] == "classify":
        label = parse_class(text, s["classes"])
        return {"parsed": label is not None, "label": label}
    parsed, boxes, usable = scored_boxes(text, s["family"], width, height, spec_of(s), logprobs)
    variant = (confidence or {}).get("scores", DEFAULT_VARIANT)
    usable = usable and token_entries(logprobs) is not None and variant != NO_SCORES
    rows = box_rows(boxes, variant if usable else None)
    return {"parsed": parsed.ok, **thresholded(rows, usable, variant, confidence, threshold)}


def thresholded(rows, usable: bool, variant: str, confidence: dict | None, threshold) -> dict:
    """``boxes`` (the rows scored at or above the threshold: ``threshold``, else the model's),
    ``raw_boxes`` (all of them), ``scores`` and ``threshold`` as applied; without usable
    log-probabilities every box is kept (``scores: none``)."""
    if not usable:
        variant, threshold = NO_SCORES, None
    elif threshold is None:
        threshold = (confidence or {}).get("threshold")
    return {
        "boxes": kept_rows(rows, threshold),
        "raw_boxes": rows,
        "scores": variant,
        "threshold": threshold,
    }


def tiled_answer(texts, views, s: dict, logprobs, confidence, threshold) -> dict:
    """A tiled model's answers for one drawing merged on it (drawtune.eval.merge_tiles),
    scored and thresholded as :func:`answer` does."""
    variant = (confidence or {}).get("scores", DEFAULT_VARIANT)
    merged_with = variant if variant != NO_SCORES else DEFAULT_VARIANT
    got = merged_answer(texts, views, s["family"], spec_of(s), tile_merge(s), logprobs, merged_with)
    usable = got.pop("scored") and variant != NO_SCORES
    rows = [{k: b[k] for k in ("label", "bbox", "score", "p") if k in b} for b in got["boxes"]]
    if not usable:
        rows = [{"label": b["label"], "bbox": b["bbox"]} for b in rows]
    return {**got, **thresholded(rows, usable, variant, confidence, threshold)}


def image_message(path, prompt: str) -> list[dict]:
    """An OpenAI chat message with the drawing inline as a data URL."""
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}},
                {"type": "text", "text": prompt},
            ],
        }
    ]


def logprob_request(cfg: dict, s: dict) -> dict:
    """What a detection model is asked for besides the answer: every token's log-probability
    and the top alternatives (predict.logprobs, predict.top_logprobs)."""
    p = cfg["predict"]
    if s["task"] != "detect" or not p.get("logprobs"):
        return {}
    return {"logprobs": True, "top_logprobs": p.get("top_logprobs") or None}


def ask(
    client,
    model: str,
    image,
    cfg: dict,
    max_tokens: int | None = None,
    root=".",
    threshold: float | None = None,
) -> dict:
    """Boxes (or the class, for a classification experiment) for one drawing from a running
    server, through an ``openai.OpenAI`` client; ``model`` is a served experiment name.

    ``drawtune serve`` answers for the whole drawing (its front tiles, merges, scores and
    thresholds: drawtune/serve_front.py) and its ``drawtune`` answer is returned as it is.
    Against a plain ``swift deploy`` the same is done here: a tiled model is asked about each
    view, boxes are scored from the answer's log-probabilities, and those below the
    experiment's threshold (``results/train/<model>/confidence.json`` under ``root``, or
    ``threshold``) are dropped from ``boxes`` and kept in ``raw_boxes``."""
    s = settings(cfg, model)
    extra = logprob_request(cfg, s)
    options = {} if threshold is None else {"extra_body": {"drawtune": {"threshold": threshold}}}

    def one(path, **more):
        reply = client.chat.completions.create(
            model=model,
            messages=image_message(path, s["prompt"]),
            max_tokens=max_tokens or cfg["predict"]["max_new_tokens"],
            temperature=0,
            **{k: v for k, v in extra.items() if v is not None},
            **more,
        )
        choice = reply.choices[0]
        lp = getattr(choice, "logprobs", None)
        front = (getattr(reply, "model_extra", None) or {}).get("drawtune")
        return choice.message.content, lp.model_dump() if extra and lp is not None else None, front

    facts = _facts(image)
    trained = s["base_path"] if s["tuner"] == "none" else paths.merged(model)
    tiling = tiling_of(trained, s)
    if not tiling or front_tiles(client, model):
        text, lp, front = one(facts.path, **options)
        if front is not None:  # drawtune serve's front answered for the whole drawing
            response = front.pop("responses", text)
            return {"image": str(image), **front, "response": response}
    confidence = confidence_of(model, root=root) if s["task"] == "detect" else None
    if not tiling:
        got = answer(text, s, facts.width, facts.height, lp, confidence, threshold)
        return {"image": str(image), **got, "response": text}
    with tempfile.TemporaryDirectory(prefix="drawtune-ask-") as tmp:
        views = image_views(
            facts.path, facts.width, facts.height, tiling, s["family"], spec_of(s), tmp
        )
        texts, logprobs = zip(*(one(v["image"])[:2] for v in views), strict=True)
    got = tiled_answer(list(texts), views, s, list(logprobs), confidence, threshold)
    return {"image": str(image), **got, "response": list(texts)}


def front_tiles(client, model: str) -> bool:
    """Whether the server is ``drawtune serve``'s front and tiles for ``model`` itself (its
    ``/v1/models`` says so); a plain ``swift deploy`` does not."""
    for m in client.models.list().data:
        if m.id == model:
            return bool(
                ((getattr(m, "model_extra", None) or {}).get("drawtune") or {}).get("tiling")
            )
    return False


def tiling_of(model, s: dict):
    """The tiling a detection model is used with: recorded next to it, else the config's."""
    return model_tiling(model, s.get("tiling")) if s["task"] == "detect" else None


def tile_merge(s: dict) -> TileMerge:
    return TileMerge.of((s.get("tiling") or {}).get("merge"))


def draw(image, boxes: list[dict], out) -> None:
    """A copy of the drawing with the predicted boxes and labels in red."""
    im = Image.open(image).convert("RGB")
    draw_predicted(ImageDraw.Draw(im), boxes)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    im.save(out)


def _facts(image, normalised_dir=None):
    try:
        return inspect(str(image), Path(normalised_dir) if normalised_dir else None)
    except ImageProblem as e:
        raise ServeError(f"{image}: {e}") from None


def predict_images(
    cfg: dict,
    model: str,
    images: list,
    out_dir,
    log_path=None,
    device: str = "cpu",
    experiment: str = "base",
    confidence: dict | None = None,
    threshold: float | None = None,
) -> list[dict]:
    """Answers for a few drawings with ``swift infer``, with the family, image size and
    prompt of ``experiment``; writes ``<stem>.png`` overlays and ``predictions.jsonl`` under
    ``out_dir`` and returns one row per drawing. A detection model is asked for its tokens'
    log-probabilities: its boxes are scored with ``confidence`` (the model's box score and
    threshold, :func:`confidence_of`), those below the threshold (or ``threshold``) are
    left out of ``boxes`` and of the picture and kept in ``raw_boxes``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = settings(cfg, experiment)
    family = s["family"]
    extra = logprob_request(cfg, s)
    facts = [_facts(i, out_dir / "pages") for i in images]
    tiling = tiling_of(model, s)  # a tiled model answers each view; merged per drawing below
    with tempfile.TemporaryDirectory(prefix="drawtune-predict-") as tmp:
        views = [
            image_views(f.path, f.width, f.height, tiling, family, spec_of(s), Path(tmp) / str(k))
            for k, f in enumerate(facts)
        ]
        data = Path(tmp) / "in.jsonl"
        dump_jsonl(
            (
                {
                    "messages": [{"role": "user", "content": "<image>" + s["prompt"]}],
                    "images": [v["image"]],
                }
                for vs in views
                for v in vs
            ),
            data,
        )
        result = Path(tmp) / "out.jsonl"
        varlen = vision_varlen_for(cfg["predict"].get("vision_varlen", "auto"), device)
        cmd, plugin_env = swift_cmd.infer_job(
            family=family,
            model=model,
            dataset=str(data),
            result_path=str(result),
            batch_size=cfg["predict"]["batch_size"],
            max_new_tokens=cfg["predict"]["max_new_tokens"],
            device=device,
            logprobs=bool(extra),
            top_logprobs=extra.get("top_logprobs") or 0,
            vision_varlen=varlen,
        )
        log = Path(log_path) if log_path else out_dir / "predict.log"
        with log.open("w") as fh:
            cmd = resolve_command(cmd)  # works from an un-activated virtualenv too
            p = subprocess.run(
                cmd,
                env={**serve_env(s, model, device), **plugin_env},
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        if p.returncode:
            tail = log.read_text().strip().splitlines()[-5:]
            raise ServeError(f"swift infer failed (see {log}): " + " | ".join(tail))
        rows = load_jsonl(result)
    n_views = sum(map(len, views))
    if len(rows) != n_views:
        raise ServeError(f"swift infer returned {len(rows)} answers for {n_views} views")
    out = []
    for image, f, vs in zip(images, facts, views, strict=True):
        texts = [r.get("response") for r in rows[: len(vs)]]
        logprobs = [r.get("logprobs") for r in rows[: len(vs)]]
        rows = rows[len(vs) :]
        if tiling:
            text = texts
            got = tiled_answer(texts, vs, s, logprobs, confidence, threshold)
        else:
            text = texts[0]
            got = answer(text, s, f.width, f.height, logprobs[0], confidence, threshold)
        name, _, page = str(image).partition("#")
        picture = out_dir / f"{Path(name).stem}{'_p' + page if page else ''}.png"
        if "boxes" in got:
            draw(f.path, got["boxes"], picture)
            got["overlay"] = str(picture)
        out.append({"image": str(image), **got, "response": text})
    dump_jsonl(out, out_dir / "predictions.jsonl")
    return out


def describe(rows: list[dict]) -> str:
    keys = ("image", "parsed", "boxes", "raw_boxes", "scores", "threshold", "label")
    return "\n".join(json.dumps({k: r[k] for k in keys if k in r}) for r in rows)
