"""``drawtune serve``'s two processes: ``swift deploy`` on a free loopback port, and in front of
it, on the address clients use, drawtune's own OpenAI-compatible front (drawtune.serve_front),
which tiles and merges for a tiled model and scores and thresholds the boxes. The front stops
when the model server does, and the model server when the front is stopped."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading

from .serve import deploy_command, resolve, serve_env
from .train.run import resolve_command


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(
    cfg: dict,
    experiment: list[str],
    *,
    lora: bool,
    host: str,
    port: int,
    backend_port: int | None,
    device: str,
) -> int:
    """Serve ``experiment`` (its merged model, or with ``lora`` the base with the adapters)
    until SIGINT/SIGTERM or the model server's end; the model server's exit status, 0 when it
    was stopped. DrawtuneError for an experiment or model that cannot be served."""
    import uvicorn

    from .serve_front import create_app, served_models

    target = resolve(cfg, experiment, lora=lora)
    served = served_models(cfg, target)
    backend_port = backend_port or free_port()
    cmd = deploy_command(
        family=target.settings["family"],
        target=target,
        host="127.0.0.1",
        port=backend_port,
        max_new_tokens=cfg["predict"]["max_new_tokens"],
        device=device,
    )
    print(f"serving {', '.join(target.names)} at http://{host}:{port}/v1", flush=True)
    for m in served.values():
        if not m.detects:
            continue
        c = m.confidence
        tiles = f"{m.tiling.size}-px tiles merged by the front" if m.tiling else "untiled"
        print(
            f"{m.name}: {tiles}; box scores {c['scores'] if c else 'none'}, threshold "
            f"{c['threshold'] if c else None} (boxes below it only in drawtune.raw_boxes)",
            flush=True,
        )
    print(f"model server (swift deploy) on 127.0.0.1:{backend_port}: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(
        resolve_command(cmd), env=serve_env(target.settings, target.model, device)
    )
    app = create_app(f"http://127.0.0.1:{backend_port}", served)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    def watch():  # the front stops when the model server does
        proc.wait()
        server.should_exit = True

    threading.Thread(target=watch, daemon=True).start()
    try:
        server.run()  # until SIGINT/SIGTERM, or the model server's end
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    code = proc.wait()
    return code if code not in (None, -signal.SIGINT, -signal.SIGTERM) else 0
