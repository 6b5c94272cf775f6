"""What stops a running Vertex AI job: a signal, Snakemake going away, or another rule of the
run failing."""

from __future__ import annotations

import re
import signal
from pathlib import Path


class Interrupted(BaseException):
    """The job must be cancelled. A BaseException, as KeyboardInterrupt is: a signal that
    arrives while the job's state is being read must not pass for a network error (which
    ``wait_for`` retries) and leave the job running."""


def raise_interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


class FailureWatch:
    """Notices another rule's failure in the Snakemake run's log (``.snakemake/log``): without
    ``--keep-going`` Snakemake stops scheduling but waits for running jobs, which on Vertex
    would be paid for nothing."""

    def __init__(self, workdir: Path):
        logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
        self.path = logs[-1] if logs else None
        self.offset = self.path.stat().st_size if self.path else 0

    def failed_rule(self) -> str | None:
        if self.path is None:
            return None
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return None
        m = re.search(r"^Error in rule (\S+?):", text, re.M)
        return m.group(1) if m else None
