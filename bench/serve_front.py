"""What drawtune serve's front costs beside the model (issue 18): one request for a whole
sheet against a loopback backend whose "model" answers instantly (the pixel detector of
tests/support/pixel_detector.py), so the time is the front's own: decoding the drawing, cutting
and encoding its views, the HTTP round trips, mapping and merging the boxes.

    python bench/serve_front.py [--width 9900] [--tile 1024] [--repeat 5]

Prints and writes bench/results/serve_front.json: per sheet size, the views and the median
seconds of a request through the front, and of the same views sent straight to the backend.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]


def main() -> int:
    import httpx
    from fastapi.testclient import TestClient
    from PIL import Image
    from pixel_detector import pixel_server, tiled_config

    from drawtune.serve import Target
    from drawtune.serve_front import create_app, served_models

    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="2000,4961,9933", help="sheet widths (A-series ratio)")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_front.json")
    a = ap.parse_args()
    cfg = tiled_config({"size": a.tile, "overlap": 0.2})
    cfg["experiments"]["tiled"]["max_pixels"] = 1003520
    rows = []
    with pixel_server() as (url, seen):
        app = create_app(url, served_models(cfg, Target("tiny", {}, ["tiled"], {})))
        with TestClient(app) as client, httpx.Client() as direct:
            for width in map(int, a.widths.split(",")):
                height = round(width / 2**0.5)
                im = Image.new("L", (width, height), 255)
                im.paste(0, (width // 4, height // 4, width // 4 + 200, height // 4 + 120))
                buf = io.BytesIO()
                im.save(buf, "PNG")
                url_data = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
                body = {
                    "model": "tiled",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image_url", "image_url": {"url": url_data}},
                                {"type": "text", "text": "Detect."},
                            ],
                        }
                    ],
                }
                times, views = [], 0
                for _ in range(a.repeat):
                    seen.clear()
                    t = time.perf_counter()
                    r = client.post("/v1/chat/completions", json=body)
                    times.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                    views = r.json()["drawtune"]["n_views"]
                sent = [s["body"] for s in seen]
                back = []
                for _ in range(a.repeat):
                    t = time.perf_counter()
                    for payload in sent:
                        direct.post(f"{url}/v1/chat/completions", json=payload).raise_for_status()
                    back.append(time.perf_counter() - t)
                row = {
                    "sheet": [width, height],
                    "views": views,
                    "front_s": round(statistics.median(times), 3),
                    "backend_only_s": round(statistics.median(back), 3),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    a.out.write_text(json.dumps({"command": " ".join(sys.argv), "tile": a.tile, "rows": rows},
                                indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
