"""The front of ``drawtune serve``: an OpenAI-compatible server in front of ``swift deploy``.

``swift deploy`` answers one picture at a time, as the model sees it. The front makes the
served model answer for a whole drawing the way the workflow's predict and score rules do:

- a model trained on tiles (issue 18) is asked about each tile of the drawing and its whole
  view, concurrently, and the boxes are mapped back to the drawing and merged across tile
  borders (drawtune.eval.merge_tiles, with the tiling recorded next to the model);
- a detection answer's boxes are scored from the tokens' log-probabilities with the model's box
  score and threshold (``results/train/<experiment>/confidence.json``), which the front asks
  the backend for whether or not the client did.

A chat completion for a detection model comes back as OpenAI's ``chat.completion`` with, beside
``choices``, a ``drawtune`` object: ``boxes`` (the drawing's pixels, kept by the threshold),
``raw_boxes`` (all of them), ``scores``, ``threshold``, ``parsed``, and for a tiled model
``n_views`` and each view's ``responses``. A tiled model's ``message.content`` is the merged
answer in the family's own box convention for the whole drawing (what an untiled model would
have written), so a client that reads answers as the model writes them keeps working. A request
may set ``"drawtune": {"threshold": t}`` to override the threshold. Everything else (listing
models, classification models, streamed answers of untiled models) passes through unchanged.

The front is FastAPI on uvicorn, as ``swift deploy`` itself is; the backend is reached with
httpx (both come with ms-swift and are pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import mimetypes
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .config import settings
from .data.convert import answer_text
from .data.images import ImageProblem, inspect
from .data.tiling import Tiling, image_views, model_tiling
from .serve import Target, answer, confidence_of, logprob_request, spec_of, tiled_answer

# the views of one drawing asked at once; a vLLM or SGLang backend batches them
CONCURRENCY = 8
NOT_UP = "the model server is not answering (still starting?)"


class RequestProblem(ValueError):
    """A request the front cannot answer, said back to the client as a 400."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Served:
    """One served model name as the front answers for it."""

    name: str
    settings: dict
    tiling: Tiling | None
    confidence: dict | None
    extra: dict  # what the backend is asked for besides the answer (log-probabilities)

    @property
    def detects(self) -> bool:
        return self.settings["task"] == "detect"

    def describe(self) -> dict:
        """What a client learns from ``/v1/models``: the task, and for a detection model the
        tiling the front applies and the box score and threshold it keeps boxes by."""
        if not self.detects:
            return {"task": self.settings["task"]}
        c = self.confidence or {}
        return {
            "task": "detect",
            "tiling": self.tiling.as_dict() if self.tiling else None,
            "scores": c.get("scores"),
            "threshold": c.get("threshold"),
        }


def served_models(cfg: dict, target: Target, root=".") -> dict[str, Served]:
    """The front's view of each served name: its settings, the tiling recorded next to its
    trained weights (else the config's), its box score and threshold."""
    out = {}
    for name in target.names:
        s = settings(cfg, name)
        if name in target.adapters:
            trained = target.adapters[name]
        elif s["tuner"] == "none":
            trained = s["base_path"]
        else:
            trained = target.model
        detects = s["task"] == "detect"
        tiling = model_tiling(trained, s.get("tiling")) if detects else None
        confidence = confidence_of(name, root=root) if detects else None
        out[name] = Served(name, s, tiling, confidence, logprob_request(cfg, s))
    return out


def the_image(messages) -> tuple[int, int, str]:
    """Where the request's one drawing is: (message index, content part index, its URL)."""
    found = []
    for i, m in enumerate(messages if isinstance(messages, list) else []):
        content = m.get("content") if isinstance(m, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                if not isinstance(url, str) or not url:
                    raise RequestProblem(
                        f"messages[{i}].content[{j}].image_url has no url", "messages"
                    )
                found.append((i, j, url))
    if len(found) != 1:
        raise RequestProblem(
            f"a detection model answers for one drawing a request; found {len(found)} images "
            "(send one image_url part)",
            "messages",
        )
    return found[0]


def image_bytes(url: str) -> tuple[bytes, str]:
    """The drawing's bytes and a file suffix, from a ``data:`` URL (what OpenAI clients send)
    or a path on the server (what ``swift deploy`` also takes)."""
    if url.startswith("data:"):
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            raise RequestProblem("the image's data URL is not base64 (data:<mime>;base64,...)")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise RequestProblem("the image's data URL holds no valid base64") from None
        mime = head[len("data:") : -len(";base64")]
        return raw, mimetypes.guess_extension(mime) or ".png"
    if url.startswith(("http://", "https://")):
        raise RequestProblem(
            "the front does not fetch images from the web: send the drawing inline as a data "
            "URL (data:image/png;base64,...) or as a path on the server"
        )
    path = Path(url.removeprefix("file://"))
    if not path.is_file():
        raise RequestProblem(f"the image {url!r} is not a file on the server")
    return path.read_bytes(), path.suffix or ".png"


def data_url(path) -> str:
    mime = mimetypes.guess_type(str(path))[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


def with_image(body: dict, at: tuple[int, int], url: str, extra: dict) -> dict:
    """The backend's request: the client's, with one view's picture in place of the drawing,
    the log-probabilities the front scores boxes with, and no ``drawtune`` options."""
    out = copy.deepcopy({k: v for k, v in body.items() if k != "drawtune"})
    i, j = at
    out["messages"][i]["content"][j] = {"type": "image_url", "image_url": {"url": url}}
    out.update({k: v for k, v in extra.items() if v is not None})
    out["stream"] = False
    return out


def threshold_of(body: dict) -> float | None:
    opts = body.get("drawtune") or {}
    if not isinstance(opts, dict):
        raise RequestProblem('drawtune must be an object, e.g. {"threshold": 0.3}', "drawtune")
    t = opts.get("threshold")
    if t is not None and (isinstance(t, bool) or not isinstance(t, int | float)):
        raise RequestProblem(f"drawtune.threshold must be a number, not {t!r}", "drawtune")
    return None if t is None else float(t)


def _usage(replies: list[dict]) -> dict:
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: sum((r.get("usage") or {}).get(k) or 0 for r in replies) for k in keys}


def detection_reply(body: dict, m: Served, width: int, height: int, replies: list, views):
    """The client's chat completion from the backend's ``replies`` (one per view)."""
    choices = [r["choices"][0] for r in replies]
    texts = [c["message"].get("content") for c in choices]
    logprobs = [c.get("logprobs") if m.extra else None for c in choices]
    threshold = threshold_of(body)
    if m.tiling is None:
        got = answer(texts[0], m.settings, width, height, logprobs[0], m.confidence, threshold)
        reply = copy.deepcopy(replies[0])
        if not body.get("logprobs"):  # asked for by the front, not by the client
            reply["choices"][0]["logprobs"] = None
        reply["drawtune"] = got
        return reply
    got = tiled_answer(texts, views, m.settings, logprobs, m.confidence, threshold)
    s = m.settings
    content = answer_text(got["boxes"], s["family"], width, height, spec_of(s))
    cut = any(c.get("finish_reason") == "length" for c in choices)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": m.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "length" if cut else "stop",
                "logprobs": None,  # the views' tokens are not the merged answer's
            }
        ],
        "usage": _usage(replies),
        "drawtune": {**got, "responses": texts},
    }


def cut(data: bytes, suffix: str, m: Served, folder: Path):
    """The request's drawing read (as validation reads drawings: PDF pages, 16-bit scans) and
    cut into the model's views under ``folder``: (its facts, the views' manifest rows)."""
    drawing = folder / f"drawing{suffix}"
    drawing.write_bytes(data)
    try:
        facts = inspect(str(drawing), folder / "pages")
    except ImageProblem as e:
        raise RequestProblem(f"the image cannot be read: {e}", "messages") from None
    s = m.settings
    views = image_views(
        facts.path, facts.width, facts.height, m.tiling, s["family"], spec_of(s), folder, fast=True
    )
    return facts, views


def error(status: int, message: str, param: str | None = None, kind="invalid_request_error"):
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status)


def create_app(backend: str, served: dict[str, Served], concurrency: int = CONCURRENCY):
    """The front's FastAPI app; ``backend`` is the base URL of ``swift deploy``."""
    app = FastAPI(title="drawtune serve")
    timeout = httpx.Timeout(None, connect=10.0)  # a long answer takes as long as it takes
    limit = asyncio.Semaphore(concurrency)

    async def backend_call(client: httpx.AsyncClient, payload: dict) -> dict:
        async with limit:
            r = await client.post(f"{backend}/v1/chat/completions", json=payload)
        if r.status_code != 200:
            raise BackendError(r)
        return r.json()

    async def forward(request: Request, body: bytes):
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        client = httpx.AsyncClient(timeout=timeout)
        try:
            req = client.build_request(
                request.method, f"{backend}{request.url.path}", content=body, headers=headers
            )
            r = await client.send(req, stream=True)
        except httpx.TransportError:
            await client.aclose()
            return error(503, NOT_UP, None, "server_error")

        async def stream():
            try:
                async for chunk in r.aiter_raw():
                    yield chunk
            finally:
                await r.aclose()
                await client.aclose()

        keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type",)}
        return StreamingResponse(stream(), status_code=r.status_code, headers=keep)

    @app.get("/health")
    async def health():
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models():
        """The backend's list, each model with what the front does for it (``drawtune``)."""
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                r = await client.get(f"{backend}/v1/models")
        except httpx.TransportError:
            return error(503, NOT_UP, None, "server_error")
        if r.status_code != 200:
            return Response(r.content, status_code=r.status_code, media_type="application/json")
        listed = r.json()
        for item in listed.get("data") or []:
            m = served.get(item.get("id"))
            if m is not None:
                item["drawtune"] = m.describe()
        return JSONResponse(listed)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return error(400, "the request body is not JSON")
        m = served.get(body.get("model")) if isinstance(body, dict) else None
        if m is None or not m.detects:
            return await forward(request, raw)
        if body.get("stream"):
            if m.tiling is not None:
                why = "its answer is merged from several views and cannot be streamed"
                return error(400, f"{m.name} is a tiled model: {why}", "stream")
            return await forward(request, raw)
        try:
            return await detect(body, m)
        except RequestProblem as e:
            return error(400, str(e), e.param)
        except BackendError as e:
            return Response(e.body, status_code=e.status, media_type="application/json")
        except httpx.TransportError:
            return error(503, NOT_UP, None, "server_error")

    async def detect(body: dict, m: Served):
        i, j, url = the_image(body.get("messages"))
        threshold_of(body)  # a bad option is said before any work
        data, suffix = image_bytes(url)
        with tempfile.TemporaryDirectory(prefix="drawtune-front-") as tmp:
            # decoding, cutting and encoding run beside the event loop: other requests go on
            facts, views = await asyncio.to_thread(cut, data, suffix, m, Path(tmp))
            urls = await asyncio.to_thread(lambda: [data_url(v["image"]) for v in views])
        async with httpx.AsyncClient(timeout=timeout) as client:
            replies = await asyncio.gather(
                *(backend_call(client, with_image(body, (i, j), u, m.extra)) for u in urls)
            )
        return await asyncio.to_thread(
            detection_reply, body, m, facts.width, facts.height, list(replies), views
        )

    return app


class BackendError(Exception):
    """The backend said no (its status and body go back to the client as they are)."""

    def __init__(self, r: httpx.Response):
        super().__init__(r.text)
        self.status, self.body = r.status_code, r.content
