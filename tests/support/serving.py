"""`drawtune serve` run for real in a workflow folder: the command on a free loopback port,
waited for until its front lists the models, an `openai` client on it, and the whole process
group stopped afterwards (the front and the `swift deploy` behind it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from drawtune.serve_process import free_port

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def drawtune_serve(wd: Path, *args: str, timeout: float = 300):
    """Yields ``(client, log)``: an ``openai.OpenAI`` client on the server, its log file."""
    from openai import OpenAI

    port = free_port()
    log_path = wd / "serve.log"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(BIN / "drawtune"), "serve", *args, "--port", str(port)],
            cwd=wd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
            deadline = time.time() + timeout
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                try:
                    client.models.list()
                    break
                except Exception:
                    assert time.time() < deadline, log_path.read_text()[-3000:]
                    time.sleep(2)
            yield client, log_path
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
