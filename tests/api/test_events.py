"""GET /api/v1/events over real HTTP: uvicorn serving the app in a thread (Starlette's TestClient collects a
whole response before returning it, so it cannot follow a stream), an httpx client reading the stream line by
line while the test publishes on the runtime."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient

from facegate.api import events as events_api
from facegate.app import create_app
from facegate.config import Settings
from facegate.events.base import Event
from facegate.events.bus import Relay
from facegate.events.nats_jetstream import NatsRelay, stream_name
from facegate.events.redis_streams import RedisRelay
from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from facegate.vision.pool import EnginePool
from tests.events.conftest import appeared, assert_track_event, free_port, wait_for


@dataclass
class Served:
    url: str
    rt: Runtime
    server: uvicorn.Server
    app_stopping: threading.Event
    read_key: str
    identify_key: str


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path, opencv_pool: EnginePool) -> Iterator[Served]:
    """The app over uvicorn; `indirect` parameters are the runtime's event settings."""
    events = getattr(request, "param", {})
    rt = Runtime(Settings(data_dir=tmp_path / "data", workers=2, events=events), engine=opencv_pool)
    rt.open()
    app = create_app(runtime=rt)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: server.started)
        yield Served(
            url=f"http://127.0.0.1:{port}",
            rt=rt,
            server=server,
            app_stopping=app.state.stopping,
            read_key=keys_service.create_key(rt, name="reader", scopes=["read"]).secret,
            identify_key=keys_service.create_key(rt, name="camera", scopes=["identify"]).secret,
        )
    finally:
        app.state.stopping.set()
        server.should_exit = True
        thread.join(15)
        rt.close()


class Stream:
    """An open SSE response read line by line; messages are parsed into (fields) dicts, comments kept apart."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.comments: list[str] = []

    def next_message(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        for line in self.lines:
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        raise EOFError(f"stream ended; comments {self.comments}")

    def wait_open(self) -> None:
        """Until the opening comment: from then on the server's subscription receives every event."""
        for line in self.lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                return
        raise EOFError


def test_events_arrive_over_http(served: Served) -> None:
    with (
        httpx.Client(base_url=served.url, headers={"X-API-Key": served.read_key}, timeout=10) as client,
        client.stream("GET", "/api/v1/events") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        stream = Stream(response)
        stream.wait_open()
        sent = [appeared(track=1), Event("left", appeared(track=1).data)]
        started = time.perf_counter()
        for event in sent:
            served.rt.events.publish(event)
        first = stream.next_message()
        latency = time.perf_counter() - started
        second = stream.next_message()
        assert (first["event"], first["id"]) == ("appeared", sent[0].id)
        assert_track_event(json.loads(first["data"]), sent[0])
        assert (second["event"], json.loads(second["data"])) == ("left", sent[1].body())
        # Woken by the publishing thread, not by a poll.
        assert latency < 0.5, latency
    # The client went away: the server dropped its subscription.
    assert wait_for(lambda: not served.rt.events.hub._subscribers, timeout=5)


def test_types_filter_and_limit(served: Served) -> None:
    with (
        httpx.Client(base_url=served.url, headers={"X-API-Key": served.read_key}, timeout=10) as client,
        client.stream("GET", "/api/v1/events", params={"types": "left", "limit": 2}) as response,
    ):
        stream = Stream(response)
        stream.wait_open()
        for track in range(3):
            served.rt.events.publish(appeared(track=track))
            served.rt.events.publish(Event("left", appeared(track=track).data))
        messages = [stream.next_message(), stream.next_message()]
        assert [(m["event"], json.loads(m["data"])["track"]) for m in messages] == [("left", 0), ("left", 1)]
        with pytest.raises(EOFError):
            stream.next_message()  # the limit ends the stream


def test_reconnecting_with_last_event_id_replays_what_was_missed(served: Served) -> None:
    sent = [appeared(track=track) for track in range(3)]
    for event in sent:
        served.rt.events.publish(event)
    headers = {"X-API-Key": served.read_key, "Last-Event-ID": sent[0].id}
    with (
        httpx.Client(base_url=served.url, headers=headers, timeout=10) as client,
        client.stream("GET", "/api/v1/events") as response,
    ):
        assert response.status_code == 200
        stream = Stream(response)
        replayed = [stream.next_message(), stream.next_message()]
        assert [(m["event"], m["id"], json.loads(m["data"])) for m in replayed] == [
            ("appeared", e.id, e.body()) for e in sent[1:]
        ]
        live = Event("updated", appeared(track=2, person_id=None, name=None).data)
        served.rt.events.publish(live)
        message = stream.next_message()
        assert (message["event"], message["id"], json.loads(message["data"])) == ("updated", live.id, live.body())
        assert stream.comments == ["facegate events"]  # no gap: nothing was missed


def test_an_id_no_longer_kept_starts_with_a_gap_then_every_kept_event(served: Served) -> None:
    sent = [appeared(track=track) for track in range(2)] + [Event("left", appeared(track=0).data)]
    for event in sent:
        served.rt.events.publish(event)
    headers = {"X-API-Key": served.read_key, "Last-Event-ID": uuid.uuid4().hex}
    with (
        httpx.Client(base_url=served.url, headers=headers, timeout=10) as client,
        client.stream("GET", "/api/v1/events", params={"types": "left"}) as response,
    ):
        stream = Stream(response)
        gap = stream.next_message()
        assert "id" not in gap  # the client's last event id stays a real event's
        assert (gap["event"], json.loads(gap["data"])) == (
            "gap",
            {"last_event_id": headers["Last-Event-ID"], "replayed": 1},
        )
        kept = stream.next_message()  # the filter applies to the replay too
        assert (kept["event"], kept["id"]) == ("left", sent[2].id)
    with httpx.Client(base_url=served.url, timeout=10) as client:
        too_long = client.get("/api/v1/events", headers={"X-API-Key": served.read_key, "Last-Event-ID": "x" * 65})
        assert too_long.status_code == 422


def test_keepalive_and_max_seconds(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_api, "KEEPALIVE_SECONDS", 0.2)
    with (
        httpx.Client(base_url=served.url, headers={"X-API-Key": served.read_key}, timeout=10) as client,
        client.stream("GET", "/api/v1/events", params={"max_seconds": 1.0}) as response,
    ):
        started = time.monotonic()
        stream = Stream(response)
        with pytest.raises(EOFError):
            stream.next_message()
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0, elapsed
    assert stream.comments[0] == "facegate events"
    assert 3 <= stream.comments.count("keep-alive") <= 6


def test_server_shutdown_ends_open_streams(served: Served) -> None:
    """`run_server` (facegate serve) sets app.state.stopping on SIGINT/SIGTERM (end to end: tests/e2e/test_events.py);
    open streams end then."""
    with (
        httpx.Client(base_url=served.url, headers={"X-API-Key": served.read_key}, timeout=10) as client,
        client.stream("GET", "/api/v1/events") as response,
    ):
        stream = Stream(response)
        stream.wait_open()
        served.app_stopping.set()
        started = time.monotonic()
        with pytest.raises(EOFError):
            stream.next_message()
        assert time.monotonic() - started < 3.0


def test_scope_and_bad_filters(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/api/v1/events").status_code == 401
        denied = client.get("/api/v1/events", headers={"X-API-Key": served.identify_key})
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "missing_scope"
        for params in ({"types": "appeared,bogus"}, {"types": ""}, {"limit": 0}, {"max_seconds": -1}):
            answer = client.get("/api/v1/events", params=params, headers={"X-API-Key": served.read_key})
            assert answer.status_code == 422, params
            assert answer.json()["error"]["code"]


def test_bounded_stream_through_the_asgi_test_client(served: Served) -> None:
    """What schemathesis does (tests/api/test_schemathesis.py bounds the stream with max_seconds)."""
    with TestClient(create_app(runtime=served.rt), headers={"X-API-Key": served.read_key}) as client:
        answer = client.get("/api/v1/events", params={"max_seconds": 0.05})
    assert answer.status_code == 200
    assert answer.text == ": facegate events\n\n"


PREFIX = f"facegate.test{uuid.uuid4().hex[:10]}"


def _following(relay: Relay | None) -> bool:
    if isinstance(relay, NatsRelay):
        return relay._nc is not None and relay._nc.is_connected
    return isinstance(relay, RedisRelay) and relay.following.is_set()


@pytest.mark.parametrize(
    "served",
    [{"type": "nats", "prefix": PREFIX}, {"type": "redis", "prefix": PREFIX}],
    indirect=True,
    ids=["nats", "redis"],
)
def test_events_of_a_worker_process_reach_the_server_stream(
    served: Served, tmp_path: Path, opencv_pool: EnginePool
) -> None:
    """With NATS or Redis, a `facegate worker` (here a second runtime publishing to the same prefix) is heard on
    the server's /api/v1/events, once."""
    broker = served.rt.settings.events.type
    worker = Runtime(
        Settings(data_dir=tmp_path / "worker", workers=2, events={"type": broker, "prefix": PREFIX}),
        engine=opencv_pool,
    )
    worker.open()
    try:
        with (
            httpx.Client(base_url=served.url, headers={"X-API-Key": served.read_key}, timeout=10) as client,
            client.stream("GET", "/api/v1/events") as response,
        ):
            stream = Stream(response)
            stream.wait_open()
            assert wait_for(lambda: _following(served.rt.events._relay))
            time.sleep(0.2)
            sent = appeared(track=5)
            worker.events.publish(sent)
            message = stream.next_message()
            assert (message["event"], message["id"], json.loads(message["data"])) == ("appeared", sent.id, sent.body())
            own = appeared(track=6)  # the server's own, echoed by the broker: shown once
            served.rt.events.publish(own)
            assert stream.next_message()["id"] == own.id
            last = appeared(track=7)
            worker.events.publish(last)
            assert stream.next_message()["id"] == last.id
    finally:
        worker.close()
        if broker == "nats":
            asyncio.run(_delete_stream(stream_name(PREFIX)))
        else:
            redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(PREFIX)


async def _delete_stream(name: str) -> None:
    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()
