"""Fixtures for the event tests: runtimes publishing to the brokers running on this machine (NATS with
JetStream on 4222, Redis on 6379, Mosquitto on 1883), a unique prefix per test so tests never see each other's
events, and a real HTTP server receiving webhooks."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError

from facegate.config import Settings
from facegate.events.base import Event
from facegate.events.nats_jetstream import stream_name
from facegate.services.runtime import Runtime
from facegate.vision.pool import EnginePool

# The keys of an `appeared` / `left` body (docs: README, Events).
TRACK_EVENT_KEYS = {
    "type", "at", "stream", "track", "person_id", "name", "distance", "confidence",
    "first_seen", "last_seen", "box", "match_id",
}  # fmt: skip


def appeared(track: int = 1, **overrides: Any) -> Event:
    data: dict[str, Any] = {
        "stream": "s-1",
        "track": track,
        "person_id": "3f2c0c4e-0000-4000-8000-000000000001",
        "name": "Lin-Manuel Miranda",
        "distance": 0.21,
        "confidence": 0.93,
        "first_seen": "2026-12-03T09:00:00+00:00",
        "last_seen": "2026-12-03T09:00:02.500000+00:00",
        "box": {"left": 10, "top": 20, "width": 64, "height": 80},
        "match_id": 17,
    }
    return Event("appeared", {**data, **overrides})


def assert_track_event(body: dict[str, Any], sent: Event) -> None:
    """A received body is the documented shape and exactly what was published."""
    assert set(body) == TRACK_EVENT_KEYS
    assert body == sent.body()
    assert set(body["box"]) == {"left", "top", "width", "height"}


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def prefix() -> str:
    return f"facegate.test{uuid.uuid4().hex[:10]}"


NATS_URL = "nats://127.0.0.1:4222"


async def _delete_stream(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
def stream(prefix: str) -> Iterator[str]:
    """The JetStream stream of `prefix`'s events, deleted after the test."""
    name = stream_name(prefix)
    yield name
    asyncio.run(_delete_stream(name))


RuntimeFactory = Callable[..., Runtime]


@pytest.fixture
def make_runtime(tmp_path: Path, opencv_pool: EnginePool) -> Iterator[RuntimeFactory]:
    """make_runtime(type=..., url=..., ...) -> an opened Runtime with those event settings; closed at teardown
    unless the test closed it (`rt.close()` is how a test flushes its publishers)."""
    with ExitStack() as stack:

        def make(**events: Any) -> Runtime:
            rt = Runtime(
                Settings(data_dir=tmp_path / f"data{uuid.uuid4().hex[:6]}", workers=2, events=events),
                engine=opencv_pool,
            )
            rt.open()
            closed = False
            close = rt.close

            def close_once() -> None:
                nonlocal closed
                if not closed:
                    closed = True
                    close()

            rt.close = close_once  # type: ignore[method-assign]
            stack.callback(close_once)
            return rt

        yield make


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: answers each POST with the next status of `statuses` (then 204), records it."""

    url: str
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # seconds before answering, per request in turn
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server: ThreadingHTTPServer
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
                status = state.statuses.pop(0) if state.statuses else 204
                delay = state.delays.pop(0) if state.delays else 0.0
            time.sleep(delay)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"{state.url}/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/facegate"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
