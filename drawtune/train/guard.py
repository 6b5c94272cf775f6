"""A trainer that dies with its rule.

``kill -9`` of the Snakemake process alone (or the OOM killer choosing it) does not reach the
rule's processes: the rule's script and the ``swift`` it runs would go on as orphans, and a rerun
would start a second trainer beside them. Every ms-swift command therefore runs under this guard
(``python -I guard.py --watch CHAIN -- swift sft ...``, see ``drawtune.train.run``), which

* gets SIGTERM when the rule's script that started it dies (Linux ``PR_SET_PDEATHSIG``, set in
  the child before ``exec``, :func:`die_with_parent`), and polls for it elsewhere;
* polls the chain of processes from the rule's script up to Snakemake (:func:`lineage`): when
  one of them lost its parent, Snakemake has gone;
* is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so that every process ms-swift starts
  (torchrun, its workers, data loaders) stays its descendant even when a middle one dies, and
  stops them all, SIGTERM then SIGKILL after a grace period, before it exits.

The file uses the standard library only: it runs by path with ``python -I``, so that it needs
neither the package on ``sys.path`` nor anything of the rule's environment.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.5  # how often the guard looks for Snakemake and the rule's script
GRACE_S = 10.0  # between SIGTERM and SIGKILL when the trainer is stopped
STOPPED = 143  # exit status when the guard stopped the command (as after SIGTERM)


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent() -> None:
    """A ``Popen`` ``preexec_fn``: the child gets SIGTERM when its parent dies (Linux)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state, parent, ...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _ppid(pid: int) -> int | None:
    """A process's parent (Linux /proc; None where it cannot be read)."""
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return not Path("/proc").is_dir()
    return fields[0] not in ("Z", "X")


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # ``snakemake ...``, ``python .../bin/snakemake ...`` or ``python -m snakemake ...``
    return any(os.path.basename(a) == b"snakemake" for a in argv[:3])


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


def format_chain(chain) -> str:
    return ",".join(f"{pid}:{parent}" for pid, parent in chain)


def parse_chain(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split(":")) for part in text.split(",") if part]


def descendants(root: int) -> list[int]:
    """Every living process below ``root`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X"):
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def _signal_all(pids, sig) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap() -> None:
    """Collect exited children (orphans reparented to this subreaper included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_tree(child: subprocess.Popen, grace: float = GRACE_S) -> None:
    """SIGTERM to ``child`` and everything below this process, SIGKILL after ``grace``."""
    pids = descendants(os.getpid()) or [child.pid]
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if child.poll() is None:
            time.sleep(0.1)
        _reap()
        if not [p for p in pids if _alive(p)] and not descendants(os.getpid()):
            return
    _signal_all(set(pids) | set(descendants(os.getpid())), signal.SIGKILL)
    child.wait()
    _reap()


def _say(text: str) -> None:
    try:  # the rule's log, through the script's pipe; gone when the script was killed
        print(f"drawtune guard: {text}", file=sys.stderr, flush=True)
    except OSError:
        pass


def guard(cmd: list[str], chain, poll: float = POLL_S, grace: float = GRACE_S) -> int:
    """Run ``cmd`` until it ends (its exit status), or until the rule's script or Snakemake
    goes away or this process is told to stop: then stop its whole tree (:data:`STOPPED`)."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    parent = os.getppid()
    stop: list[str] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append("told to stop (SIGTERM)"))
    signal.signal(signal.SIGHUP, lambda signum, frame: stop.append("told to stop (SIGHUP)"))
    # Ctrl-C reaches the command itself (same process group); the guard waits for its exit.
    # A handler, not SIG_IGN: an ignored signal would stay ignored in the command after exec.
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    child = subprocess.Popen(cmd, preexec_fn=die_with_parent)
    while True:
        try:
            rc = child.wait(timeout=poll)
        except subprocess.TimeoutExpired:
            rc = None
        if rc is not None:
            if descendants(os.getpid()):  # left behind by the command (data loader workers)
                stop_tree(child, grace)
            _reap()
            return rc
        why = stop[0] if stop else None
        if why is None and (os.getppid() != parent or orphaned(chain)):
            why = "the Snakemake process that ran this rule has gone"
        if why:
            _say(f"{why}: stopping {' '.join(cmd[:2])} (pid {child.pid}) and its processes")
            stop_tree(child, grace)
            return STOPPED


def command(cmd: list[str], chain=None) -> list[str]:
    """``cmd`` run under the guard, watching ``chain`` (default: this process's lineage)."""
    chain = lineage() if chain is None else chain
    here = str(Path(__file__).resolve())
    return [sys.executable, "-I", here, "--watch", format_chain(chain), "--", *cmd]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chain = []
    if argv[:1] == ["--watch"]:
        chain, argv = parse_chain(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: guard.py [--watch PID:PARENT,...] -- COMMAND...", file=sys.stderr)
        return 2
    return guard(argv, chain)


if __name__ == "__main__":
    sys.exit(main())
