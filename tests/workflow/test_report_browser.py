"""The built report in a real browser (issue 20): headless Chromium (Debian's `chromium`,
installed by `make browser-deps`; no browser is downloaded), driven through its DevTools
protocol (tests/support/browser.py). It opens the report of the session's workflow run, checks
that no page has a script error, that the first page is the leaderboard, that every page
loads with its pictures shown no larger than drawn, and saves a screenshot of each page.

Screenshots go to $DRAWTUNE_ARTIFACTS/report (default: test-artifacts/report in the
repository); the test prints the folder. Without Chromium the test is skipped, unless
DRAWTUNE_REQUIRE_BROWSER=1 (as .ci/run sets it), when it fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from browser import Browser, find_chromium
from conftest import ROOT

from drawtune.report import CATEGORIES

pytestmark = pytest.mark.workflow

# Snakemake's report styles itself with Tailwind at run time: its navigation bar has its colour
# once that is done, and a screenshot before it shows an unstyled page.
STYLED = (
    "(() => { const n = document.querySelector('.backdrop-blur-sm.h-screen');"
    " return n !== null && getComputedStyle(n).backgroundColor !== 'rgba(0, 0, 0, 0)'; })()"
)
# every picture of a page: loaded, and shown no wider than it was drawn (so readable)
PICTURES = (
    "[...document.images].map(i => ({src: i.src.slice(0, 22), ok: i.complete &&"
    " i.naturalWidth > 0, shown: i.width, drawn: i.naturalWidth}))"
)


@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    if exe is None:
        if os.environ.get("DRAWTUNE_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (make browser-deps)")
        pytest.skip("chromium is not installed (make browser-deps)")
    return exe


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = Path(os.environ.get("DRAWTUNE_ARTIFACTS", ROOT / "test-artifacts"))
    folder = root / "report"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _show(page, path: str):
    """Show one result of the report as its own menu entry does, and return the frame's
    execution context once the page in it has loaded."""
    before = {f["id"] for f in page.frames()}
    page.evaluate(
        f"app.setView({{content: 'html', resultPath: {json.dumps(path)},"
        f" contentPath: results[{json.dumps(path)}].data_uri}})"
    )

    def frame():
        new = [f for f in page.frames() if f["url"].startswith("data:text/html")]
        return [f for f in new if f["id"] not in before] or new

    page.wait_for("document.querySelector('iframe') !== null")
    for _ in range(50):
        frames = frame()
        if frames:
            break
        time.sleep(0.1)
    ctx = page.frame_context(frames[0]["id"])
    page.wait_for("document.readyState === 'complete' && document.body !== null", context=ctx)
    return ctx


def test_report_opens_in_chromium_on_the_leaderboard(built_report, chromium, artifacts, capsys):
    with capsys.disabled():
        print(f"\nreport screenshots: {artifacts}")
    with Browser(chromium, width=1400, height=1000) as browser:
        page = browser.open(built_report.as_uri())
        page.wait_for("document.querySelector('#drawtune-home table') !== null")
        page.wait_for(STYLED)
        # the first page: the leaderboard, both models ranked, the note on the tiny model
        rows = page.evaluate(
            "[...document.querySelectorAll('#drawtune-home tbody tr')]"
            ".map(r => [...r.children].map(c => c.textContent))"
        )
        assert [r[1] for r in rows] == ["base", "demo"] or [r[1] for r in rows] == ["demo", "base"]
        assert [r[0] for r in rows] == ["1", "2"]
        demo = next(r for r in rows if r[1] == "demo")
        assert re.fullmatch(r"\d+\.\d", demo[-3]) and demo[-2] == "CPU"  # minutes, no GPU
        visible = page.evaluate(
            "(() => { const r = document.querySelector('#drawtune-home table')"
            ".getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight &&"
            " r.width > 900; })()"
        )
        assert visible, "the leaderboard is not on the first screen at full width"
        page.screenshot(artifacts / "first-page.png")

        # its links open the report's categories
        page.evaluate("document.querySelector('#drawtune-home nav a[href*=\"4%20Data\"]').click()")
        page.wait_for(f"app.state.category === {json.dumps(CATEGORIES['data'])}")
        page.screenshot(artifacts / "data-category.png")

        # every page of the report, as its menu entry shows it
        results = page.evaluate(
            "Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.mime_type]))"
        )
        shown = sorted(p for p, mime in results.items() if mime == "text/html")
        assert {
            "results/report/metrics.html",
            "results/report/compare.html",
            "results/report/data.html",
            "results/report/provenance.html",
            "results/report/models/demo.html",
            "results/report/models/base.html",
            "results/report/gallery/demo.html",
            "results/report/gallery/base.html",
        } <= set(shown)
        pictured = {"models", "gallery", "data.html", "compare.html"}
        for path in shown:
            ctx = _show(page, path)
            if path.endswith("compare.html"):  # its script fills the table and pictures
                page.wait_for("document.querySelectorAll('#table tbody tr').length > 3", 10, ctx)
                options = page.evaluate("[...document.getElementById('a').options].length", ctx)
                assert options == 2
            pictures = page.evaluate(PICTURES, ctx)
            assert all(p["ok"] for p in pictures), (path, pictures)
            for p in pictures:  # shown at most at the size drawn: never blown up, readable
                assert p["shown"] <= p["drawn"] + 1, (path, p)
            if any(k in path for k in pictured):
                assert pictures, f"{path} shows no picture"
            title = page.evaluate("document.querySelector('h1').textContent", ctx)
            assert title
            name = path.removeprefix("results/report/").replace("/", "-").removesuffix(".html")
            page.screenshot(artifacts / f"{name}.png")
        assert page.errors() == []
    shots = sorted(p.name for p in artifacts.glob("*.png"))
    assert "first-page.png" in shots and len(shots) >= 10
