"""drawtune serve's front (drawtune/serve_front.py) in front of a loopback backend whose model
is a perfect one-object detector (tests/support/pixel_detector.py): a tiled model is asked
about every view and answers for the whole drawing, merged; an untiled one once; the real
`openai` client and drawtune.serve.ask read it; bad requests are said back as 400s naming the
field. The real `swift deploy` behind it: tests/workflow/test_tiled_workflow.py."""

from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pixel_detector import PixelClient, pixel_server, tiled_config

from drawtune.coords import ResizeSpec
from drawtune.data.convert import answer_text
from drawtune.serve import Target, ask
from drawtune.serve_front import create_app, image_bytes, served_models, the_image

TILING = {"size": 400, "overlap": 0.25}
SHEET_BOX = [250.0, 49.7, 450.0, 150.0]  # test_tiling's merge of the tiles and whole view


@pytest.fixture
def sheet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/train/*/confidence.json here: boxes unscored
    im = Image.new("L", (1000, 700), 255)
    im.paste(0, (250, 50, 450, 150))  # one object across the border of two tiles
    im.save(tmp_path / "sheet.png")
    return tmp_path / "sheet.png"


@pytest.fixture
def front():
    cfg = tiled_config(TILING)
    target = Target("tiny", {}, ["tiled", "plain"], {})
    with pixel_server() as (url, seen):
        app = create_app(url, served_models(cfg, target))
        with TestClient(app) as client:
            yield client, seen, cfg


def _url(path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _request(model, *parts, **more) -> dict:
    content = [*parts, {"type": "text", "text": "Detect."}]
    return {"model": model, "messages": [{"role": "user", "content": content}], **more}


def _image(path) -> dict:
    return {"type": "image_url", "image_url": {"url": _url(path)}}


def test_a_tiled_model_answers_for_the_whole_drawing(front, sheet):
    client, seen, _ = front
    r = client.post("/v1/chat/completions", json=_request("tiled", _image(sheet), max_tokens=99))
    assert r.status_code == 200, r.text
    got = r.json()
    # the whole view (512 x 352) and six 400-px tiles, each asked once, with the client's options
    assert sorted(s["size"] for s in seen) == sorted([(512, 352), *[(400, 400)] * 6])
    assert all(s["body"]["max_tokens"] == 99 and s["body"]["stream"] is False for s in seen)
    d = got["drawtune"]
    assert d["n_views"] == 7 and len(d["responses"]) == 7 and d["parsed"]
    assert d["boxes"] == [{"label": "view", "bbox": SHEET_BOX}] == d["raw_boxes"]
    assert d["scores"] == "none" and d["threshold"] is None  # no log-probabilities to score
    # the message is the merged answer as the model would write it for the whole drawing
    spec = ResizeSpec(min_pixels=3136, max_pixels=200704)
    assert got["choices"][0]["message"]["content"] == answer_text(
        d["boxes"], "qwen3_vl", 1000, 700, spec
    )
    assert got["object"] == "chat.completion" and got["model"] == "tiled"
    assert got["usage"] == {"prompt_tokens": 70, "completion_tokens": 35, "total_tokens": 105}


def test_an_untiled_model_is_asked_once_and_its_answer_kept(front, sheet):
    client, seen, _ = front
    r = client.post("/v1/chat/completions", json=_request("plain", _image(sheet)))
    assert r.status_code == 200, r.text
    (one,) = seen
    assert one["size"] == (1000, 700)
    got = r.json()
    answered = [{"bbox_2d": [250, 71, 450, 214], "label": "view"}]  # the model's own words
    assert got["choices"][0]["message"]["content"] == f"```json\n{json.dumps(answered)}\n```"
    assert got["drawtune"]["boxes"] == [{"label": "view", "bbox": [250.0, 49.7, 450.0, 149.8]}]
    assert "n_views" not in got["drawtune"]


def test_the_models_list_says_what_the_front_does(front):
    client, _, _ = front
    listed = {m["id"]: m["drawtune"] for m in client.get("/v1/models").json()["data"]}
    assert listed["tiled"]["tiling"]["size"] == 400 and listed["plain"]["tiling"] is None
    assert listed["plain"] == {"task": "detect", "tiling": None, "scores": None, "threshold": None}


def test_the_openai_client_and_ask_read_the_front_as_they_read_a_plain_server(front, sheet):
    from openai import OpenAI

    client, seen, cfg = front
    openai = OpenAI(base_url="http://testserver/v1", api_key="none", http_client=client)
    via_front = ask(openai, "tiled", sheet, cfg)
    assert len(seen) == 7  # the front cut the tiles, not the client
    # the same answer as when the client cuts the tiles itself against a plain swift deploy
    direct = ask(PixelClient(), "tiled", sheet, cfg)
    for k in ("parsed", "boxes", "raw_boxes", "scores", "threshold", "n_views", "response"):
        assert via_front[k] == direct[k], k
    assert via_front["boxes"] == [{"label": "view", "bbox": SHEET_BOX}]
    plain = ask(openai, "plain", sheet, cfg)
    assert plain["boxes"] == ask(PixelClient(), "plain", sheet, cfg)["boxes"]
    assert len(seen) == 8


def test_bad_requests_name_what_is_wrong(front, sheet, tmp_path):
    client, seen, _ = front

    def said(body) -> tuple[int, str, str | None]:
        r = client.post("/v1/chat/completions", json=body)
        e = r.json()["error"]
        return r.status_code, e["message"], e["param"]

    code, msg, param = said(_request("tiled", _image(sheet), _image(sheet)))
    assert code == 400 and "found 2 images" in msg and param == "messages"
    code, msg, _ = said(_request("tiled"))
    assert code == 400 and "found 0 images" in msg
    web = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    code, msg, _ = said(_request("tiled", web))
    assert code == 400 and "data URL" in msg
    code, msg, param = said(_request("tiled", _image(sheet), stream=True))
    assert code == 400 and "cannot be streamed" in msg and param == "stream"
    code, msg, param = said(_request("tiled", _image(sheet), drawtune={"threshold": "high"}))
    assert code == 400 and "drawtune.threshold" in msg and param == "drawtune"
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    junk = {"type": "image_url", "image_url": {"url": str(tmp_path / "junk.png")}}
    code, msg, _ = said(_request("tiled", junk))
    assert code == 400 and "cannot be read" in msg
    assert seen == []  # none of them reached the model
    r = client.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400
    # the backend's own refusal comes back as it is
    r = client.post("/v1/chat/completions", json=_request("other", _image(sheet)))
    assert r.status_code == 400 and "no model other" in r.text


def test_a_path_on_the_server_is_read_like_a_data_url(sheet):
    assert image_bytes(str(sheet)) == (sheet.read_bytes(), ".png")
    assert image_bytes(_url(sheet)) == (sheet.read_bytes(), ".png")
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    data = "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode()
    assert image_bytes(data)[1] == ".jpg"
    msgs = [{"role": "system", "content": "x"}, _request("t", _image(sheet))["messages"][0]]
    assert the_image(msgs)[:2] == (1, 0)


def test_a_backend_not_up_is_a_503():
    cfg = tiled_config(TILING)
    app = create_app("http://127.0.0.1:9", served_models(cfg, Target("tiny", {}, ["plain"], {})))
    with TestClient(app) as client:
        assert client.get("/v1/models").status_code == 503
        r = client.post("/v1/chat/completions", json={"model": "x", "messages": []})
        assert r.status_code == 503 and "not answering" in r.json()["error"]["message"]
