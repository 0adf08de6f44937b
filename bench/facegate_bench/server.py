"""A real `facegate serve` child process on a free local port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from facegate_bench.processes import executable, facegate_env

BENCH_DIR = Path(__file__).resolve().parents[1]
# The floor under facegate's identify overhead (floor_app.py), as `running_server(asgi_app=...)` takes it.
FLOOR_APP = "facegate_bench.floor_app:app"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    start_seconds: float
    log_path: Path


@contextmanager
def running_server(
    data_dir: Path,
    engine: str,
    log_path: Path,
    *,
    timeout: float = 300.0,
    extra_env: dict[str, str] | None = None,
    asgi_app: str | None = None,
) -> Iterator[Server]:
    """`facegate serve` as a child process, yielded once GET /ready answers 200; stopped on exit. `extra_env`:
    more environment for the child (e.g. PYTHONPATH pointing at another checkout's src). `asgi_app`: serve this
    app instead ("module:attribute", e.g. facegate_bench.floor_app:app) with uvicorn and h11, as `facegate
    serve` runs its own."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    if asgi_app is None:
        command = [executable("facegate"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    else:
        command = [executable("uvicorn"), asgi_app, "--host", "127.0.0.1", "--port", str(port), "--http", "h11"]
        # The app's module may be this bench package's: the child imports it from here.
        paths = [str(BENCH_DIR), *filter(None, [(extra_env or {}).get("PYTHONPATH", os.environ.get("PYTHONPATH"))])]
        extra_env = {**(extra_env or {}), "PYTHONPATH": os.pathsep.join(paths)}
    started = time.perf_counter()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            env={**facegate_env(data_dir, engine), **(extra_env or {})},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=url, timeout=5.0) as client:
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"facegate serve exited ({process.returncode}); see {log_path}")
                    if time.perf_counter() - started > timeout:
                        raise RuntimeError(f"facegate serve was not ready within {timeout:.0f}s; see {log_path}")
                    try:
                        if client.get("/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
            yield Server(url, process, time.perf_counter() - started, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
