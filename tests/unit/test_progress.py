"""Progress relay: tqdm bars in a child's output become a short line every N seconds."""

from __future__ import annotations

import io

from drawtune.train.progress import Relay


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def bar(n, total, elapsed, eta):
    return f"Train: {100 * n // total}%|###   | {n}/{total} [{elapsed}<{eta},  1.50s/it]\r"


def test_relay_prints_latest_state_at_most_every_interval():
    clock, out = Clock(), io.StringIO()
    r = Relay("swift sft demo", every=30, out=out, clock=clock)
    r.feed("loading model...\n" + bar(1, 10, "00:01", "00:14"))
    assert out.getvalue() == ""  # not yet due
    clock.t = 31
    r.feed(bar(2, 10, "00:03", "00:12") + bar(3, 10, "00:04", "00:10"))
    lines = out.getvalue().splitlines()
    assert lines == ["swift sft demo: 3/10 (30%), elapsed 00:04, ETA 00:10, 1.50s/it"]
    clock.t = 40
    r.feed(bar(4, 10, "00:06", "00:09"))
    assert len(out.getvalue().splitlines()) == 1
    # a bar split across reads, then the end: the final state is always shown
    r.feed("Train: 100%|######| 10/1")
    r.feed("0 [00:15<00:00,  1.50s/it]")
    r.close()
    assert out.getvalue().splitlines()[-1].startswith("swift sft demo: 10/10 (100%)")


def test_relay_silent_without_bars():
    out = io.StringIO()
    r = Relay("swift export", every=0, out=out, clock=Clock())
    r.feed("merging...\nsaved to results/merged/demo\n")
    r.close()
    assert out.getvalue() == ""
