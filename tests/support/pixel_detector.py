"""A perfect detector of one object, for the serving tests: its "model" answers the box of the
dark pixels of each picture it is sent, in Qwen3-VL's 0-1000 coordinates. Two ways to reach it:

- :class:`PixelClient`, an ``openai.OpenAI`` client stand-in (``chat.completions.create``,
  ``models.list``), for code that takes a client;
- :func:`pixel_server`, a loopback HTTP server speaking the two routes of ``swift deploy`` that
  ``drawtune serve``'s front calls (``/v1/models``, ``/v1/chat/completions``): the network
  boundary the front crosses, where the real ``swift deploy`` is run by tests/workflow."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

from PIL import Image


def picture_of(messages) -> Image.Image:
    (url,) = [
        p["image_url"]["url"]
        for m in messages
        for p in (m["content"] if isinstance(m["content"], list) else [])
        if p.get("type") == "image_url"
    ]
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L")


def pixel_answer(im: Image.Image) -> str:
    box = im.point(lambda v: 255 if v < 128 else 0).getbbox()
    w, h = im.size
    items = []
    if box:
        x1, y1, x2, y2 = box
        coords = [round(x1 * 1000 / w), round(y1 * 1000 / h)]
        coords += [round(x2 * 1000 / w), round(y2 * 1000 / h)]
        items = [{"bbox_2d": coords, "label": "view"}]
    return "```json\n" + json.dumps(items) + "\n```"


class PixelClient:
    """``openai.OpenAI`` as far as drawtune.serve.ask uses it; ``sizes``: each picture sent."""

    def __init__(self, names=("tiled", "plain")):
        self.sizes = []
        self.names = names
        self.chat = self.completions = self.models = self

    def create(self, model, messages, max_tokens, temperature, **asked):
        # asked: logprobs and top_logprobs (issue 17); this stand-in answers without them
        im = picture_of(messages)
        self.sizes.append(im.size)
        message = SimpleNamespace(content=pixel_answer(im))
        return SimpleNamespace(choices=[SimpleNamespace(message=message)])

    def list(self):  # a plain swift deploy: no drawtune front
        return SimpleNamespace(data=[SimpleNamespace(id=n) for n in self.names])


@contextlib.contextmanager
def pixel_server(names=("tiled", "plain")):
    """A backend on a free loopback port; yields ``(base_url, requests)`` where ``requests``
    collects every chat request's JSON body and the size of its picture."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path != "/v1/models":
                return self._send(404, {"detail": "Not Found"})
            listed = [{"id": n, "object": "model"} for n in names]
            self._send(200, {"object": "list", "data": listed})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            if body.get("model") not in names:
                return self._send(400, {"error": {"message": f"no model {body.get('model')}"}})
            im = picture_of(body["messages"])
            seen.append({"body": body, "size": im.size})
            text = pixel_answer(im)
            self._send(
                200,
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def tiled_config(tiling):
    """A config serving the pixel detector as a tiled and a plain (untiled) experiment."""
    from drawtune.config import completed

    cfg = {
        "classes": ["view"],
        "datasets": {"d": {"format": "coco", "annotations": "d.json"}},
        "model": {"family": "qwen3_vl", "base": "tiny", "max_pixels": 200704},
        "prompt": "Detect.",
        "experiments": {"tiled": {"tuner": "none", "tiling": tiling}, "plain": {"tuner": "none"}},
    }
    return completed(cfg)
