"""Events out of a real `facegate serve` process: a video stream added over HTTP yields events that arrive at
once on an open Server-Sent Events stream, in the real Redis on 6379 and at a signed webhook; SIGTERM with the
event stream still open ends it and the server exits (uvicorn would otherwise wait for the client forever)."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.e2e.conftest import Processes, child_env
from tests.events.conftest import Receiver, receiver  # noqa: F401  (the fixture)
from tests.events.test_webhooks import verify

SECRET = "e2e-webhook-secret"


def _sse_messages(response: httpx.Response, out: list[dict[str, Any]], opened: threading.Event) -> None:
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            opened.set()
        elif line == "" and fields:
            out.append({"event": fields["event"], "id": fields["id"], "body": json.loads(fields["data"])})
            fields = {}
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value


def test_stream_events_reach_sse_redis_and_webhooks(
    processes: Processes,
    tmp_path: Path,
    dev: Path,
    receiver: Receiver,  # noqa: F811
) -> None:
    prefix = f"facegate.e2e{uuid.uuid4().hex[:8]}"
    env = child_env(
        tmp_path / "data",
        FACEGATE_ENGINE__TYPE="opencv",
        FACEGATE_EVENTS__TYPE="redis",
        FACEGATE_EVENTS__PREFIX=prefix,
        FACEGATE_EVENTS__WEBHOOKS=receiver.url,
        FACEGATE_EVENTS__WEBHOOK_SECRET=SECRET,
    )
    server = processes.start_server("serve", env)
    messages: list[dict[str, Any]] = []
    opened = threading.Event()
    try:
        with server.client() as api, api.stream("GET", "/api/v1/events", timeout=None) as response:
            assert response.status_code == 200
            reader = threading.Thread(target=_sse_messages, args=(response, messages, opened), daemon=True)
            reader.start()
            assert opened.wait(10)
            clip = str(dev / "video" / "short_hamilton_clip.mp4")
            with server.client() as admin:
                assert admin.post("/api/v1/streams", json={"source": clip, "name": "stage"}).status_code == 201
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(m["event"] == "appeared" for m in messages):
                time.sleep(0.1)
            appeared = next(m for m in messages if m["event"] == "appeared")
            assert appeared["body"]["stream"] == "stage"
            assert appeared["body"]["type"] == "appeared"

            # The same event, by id, in Redis and at the webhook, whose signature checks out.
            with redis.Redis() as client:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    stored = {f[b"id"].decode(): json.loads(f[b"data"]) for _, f in client.xrange(prefix)}
                    if appeared["id"] in stored:
                        break
                    time.sleep(0.1)
                assert stored[appeared["id"]] == appeared["body"]
            deliveries = {d.headers["x-facegate-delivery"]: d for d in receiver.received()}
            hook = deliveries[appeared["id"]]
            assert verify(SECRET, hook.body, hook.headers["x-facegate-signature"])
            assert hook.json() == appeared["body"]

            # SIGTERM with the SSE stream open: the stream ends and the server exits.
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=30)
            reader.join(10)
            assert not reader.is_alive()
            assert time.monotonic() - started < 15
            # A clean shutdown: uvicorn re-raises the signal it handled once it has finished.
            assert server.process.returncode in (0, -signal.SIGTERM)
            assert "Finished server process" in server.log()
    finally:
        with redis.Redis() as client:
            client.delete(prefix)
