"""What stops a running Vertex AI job: a signal, Snakemake going away, or another rule of the
run failing."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path


class Interrupted(BaseException):
    """The job must be cancelled. A BaseException, as KeyboardInterrupt is: a signal that
    arrives while the job's state is being read must not pass for a network error (which
    ``wait_for`` retries) and leave the job running."""


def raise_interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def _ppid(pid: int) -> int | None:
    """A process's parent (Linux /proc; None where it cannot be read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(a) == b"snakemake" for a in argv[:2])


def lineage() -> list[tuple[int, int]]:
    """``(pid, parent)`` from this process up to the child of the Snakemake process that
    started the rule (only this process where /proc is missing or no Snakemake is above)."""
    chain = [(os.getpid(), os.getppid())]
    parent = chain[0][1]
    for _ in range(8):
        if _is_snakemake(parent):
            return chain
        grand = _ppid(parent)
        if not grand or grand <= 1:
            break
        chain.append((parent, grand))
        parent = grand
    return chain[:1]


def orphaned(chain) -> bool:
    """True when a process of ``chain`` lost its parent (Snakemake or a shell between died)."""
    for pid, parent in chain:
        now = os.getppid() if pid == os.getpid() else _ppid(pid)
        if now != parent:
            return True
    return False


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
