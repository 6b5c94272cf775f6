"""Progress of long steps on the terminal: the tqdm bars that ms-swift writes into a rule's log
become one short line every ``every`` seconds on stderr (which Snakemake shows), e.g.
``swift sft demo: 120/600 steps (20%), elapsed 02:01, ETA 08:05``."""

from __future__ import annotations

import os
import re
import sys
import time

_TQDM = re.compile(
    r"(?P<n>\d+)/(?P<total>\d+) \[(?P<elapsed>[\d:]+)<(?P<eta>[\d:?]+)(?:, *(?P<rate>[^\]]*))?\]"
)
EVERY = float(os.environ.get("DRAWTUNE_PROGRESS_SECONDS", "30"))


class Relay:
    """Feed it a child's output; it prints the latest progress bar state now and then."""

    def __init__(self, label: str, every: float = EVERY, out=None, clock=time.monotonic):
        self.label, self.every, self.out, self.clock = label, every, out or sys.stderr, clock
        self.last_emit = clock()
        self.state: dict | None = None
        self.emitted: dict | None = None
        self.buf = ""

    def feed(self, text: str) -> None:
        self.buf += text
        *parts, self.buf = re.split(r"[\r\n]", self.buf)
        for part in parts:
            found = list(_TQDM.finditer(part))
            if found:
                self.state = found[-1].groupdict()
        if self.state and self.clock() - self.last_emit >= self.every:
            self._emit()

    def _emit(self) -> None:
        s = self.state
        pct = 100 * int(s["n"]) / max(int(s["total"]), 1)
        rate = f", {s['rate'].strip()}" if s.get("rate") else ""
        line = (
            f"{self.label}: {s['n']}/{s['total']} ({pct:.0f}%), elapsed {s['elapsed']}, "
            f"ETA {s['eta']}{rate}"
        )
        print(line, file=self.out, flush=True)
        self.last_emit, self.emitted = self.clock(), dict(s)

    def close(self) -> None:
        self.feed("\n")
        if self.state and self.state != self.emitted:
            self._emit()
