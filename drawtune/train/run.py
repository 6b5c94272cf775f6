"""Running ms-swift: the program found from a plain or an un-activated virtualenv, its output
appended to the rule's log with its progress bars relayed to the terminal, a failure reported
with the log's tail. It runs under ``drawtune.train.guard``: it dies with its rule."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import StageError
from . import guard, swift_cmd
from .progress import Relay

log = logging.getLogger("drawtune")


def resolve_command(cmd: list[str]) -> list[str]:
    """``cmd`` with its program found on PATH or beside this Python (see :func:`executable`)."""
    return [executable(cmd[0]), *cmd[1:]]


def executable(name: str) -> str:
    """``name`` from PATH, else beside the running Python (an un-activated virtualenv)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    raise StageError(f"{name!r} is not installed: run `make install` or put it on PATH")


def run_logged(cmd: list[str], env: dict, log_path, label: str | None = None, environ=None) -> None:
    """Run ``cmd`` with ``env`` on top of ``environ`` (default: this process's environment),
    appending its output to ``log_path`` and relaying its progress bars to stderr
    (drawtune.train.progress); fail with the log's tail."""
    label = label or " ".join(cmd[:2])
    cmd = resolve_command(cmd)
    if "--attn_impl" in cmd:
        log.info("attention implementation: %s", cmd[cmd.index("--attn_impl") + 1])
    log.info("running: %s", " ".join(cmd))
    log.info("environment: %s", " ".join(f"{k}={v}" for k, v in sorted(env.items())))
    relay = Relay(label)
    child = swift_cmd.child_env(env) if environ is None else {**environ, **env}
    with open(log_path, "ab") as f:
        proc = subprocess.Popen(
            guard.command(cmd),
            env=child,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=guard.die_with_parent,  # the guard stops the command if this dies
        )
        for chunk in iter(lambda: proc.stdout.read1(65536), b""):
            f.write(chunk)
            f.flush()
            relay.feed(chunk.decode(errors="replace"))
        proc.wait()
        relay.close()
    if proc.returncode != 0:
        tail = Path(log_path).read_text(errors="replace").splitlines()[-15:]
        raise StageError(
            f"{Path(cmd[0]).name} {cmd[1]} exited with {proc.returncode}:\n" + "\n".join(tail)
        )
