"""events.redis_streams: events published by a Runtime land in the real Redis on 6379 (XADD, trimmed), and a
private redis-server started here shows reconnection after the broker restarts."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from facegate.events.base import Event
from facegate.events.redis_streams import RedisRelay
from tests.events.conftest import RuntimeFactory, appeared, assert_track_event, free_port, wait_for

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client(prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(URL)
    yield client
    client.delete(prefix)
    client.close()


def test_events_arrive_in_one_stream_in_order(make_runtime: RuntimeFactory, prefix: str, client: redis.Redis) -> None:
    rt = make_runtime(type="redis", url=URL, prefix=prefix)
    sent = [appeared(track=1), Event("updated", appeared(track=1).data), Event("left", appeared(track=1).data),
        Event("unknown_person_recurring", {
        "suggestion_id": 4, "size": 3, "sightings": 5, "first_seen": "2026-12-03T08:00:00+00:00",
        "last_seen": "2026-12-03T09:00:00+00:00"})]  # fmt: skip
    for event in sent:
        rt.events.publish(event)
    rt.close()  # flushes
    entries = client.xrange(prefix)
    assert len(entries) == 4
    for (_, fields), event in zip(entries, sent, strict=True):
        assert fields[b"type"].decode() == event.type
        assert fields[b"id"].decode() == event.id
        assert json.loads(fields[b"data"]) == event.body()
    assert_track_event(json.loads(entries[0][1][b"data"]), sent[0])
    assert rt.events.stats()[1].published == 4


def test_the_stream_is_trimmed(make_runtime: RuntimeFactory, prefix: str, client: redis.Redis) -> None:
    rt = make_runtime(type="redis", url=URL, prefix=prefix, max_len=10)
    for track in range(600):
        rt.events.publish(appeared(track=track))
    rt.close()
    assert rt.events.stats()[1].published == 600
    # MAXLEN ~ trims whole blocks (100 entries by default): about 10, never all 600.
    assert 10 <= client.xlen(prefix) <= 200
    assert json.loads(client.xrevrange(prefix, count=1)[0][1][b"data"])["track"] == 599


def test_a_key_of_another_type_is_a_refusal(make_runtime: RuntimeFactory, prefix: str, client: redis.Redis) -> None:
    client.set(prefix, "not a stream")
    rt = make_runtime(type="redis", url=URL, prefix=prefix)
    rt.events.publish(appeared())
    assert wait_for(lambda: rt.events.stats()[1].failed == 1)
    assert rt.events.stats()[1].published == 0


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server program")
def test_reconnects_after_the_broker_restarts(make_runtime: RuntimeFactory, prefix: str, tmp_path: Path) -> None:
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    url = f"redis://127.0.0.1:{port}/0"
    server = start()
    try:
        assert wait_for(lambda: _pings(url))
        rt = make_runtime(type="redis", url=url, prefix=prefix, backoff_seconds=0.05, backoff_max_seconds=0.2)
        rt.events.publish(appeared(track=1))
        assert wait_for(lambda: rt.events.stats()[1].published == 1)
        server.terminate()
        server.wait(10)
        # Down: publishing returns at once; the event waits in the queue (one failed try, then reconnecting).
        rt.events.publish(appeared(track=2))
        assert wait_for(lambda: rt.events.stats()[1].queued == 0)  # taken by the delivery thread
        server = start()
        assert wait_for(lambda: rt.events.stats()[1].published == 2)
        client = redis.Redis.from_url(url)
        tracks = [json.loads(fields[b"data"])["track"] for _, fields in client.xrange(prefix)]
        client.close()
        assert tracks == [1, 2]
        assert rt.events.stats()[1].failed == 0
    finally:
        server.terminate()
        server.wait(10)


def _pings(url: str) -> bool:
    try:
        with redis.Redis.from_url(url) as c:
            return bool(c.ping())
    except redis.exceptions.ConnectionError:
        return False


def test_a_server_follows_what_other_processes_publish(
    make_runtime: RuntimeFactory, prefix: str, client: redis.Redis
) -> None:
    """A server (its SSE) sees the events a `facegate worker` appends to the stream, its own once, and skips an
    entry that is no facegate event."""
    server = make_runtime(type="redis", url=URL, prefix=prefix)
    worker = make_runtime(type="redis", url=URL, prefix=prefix)
    before = appeared(track=0)  # in the stream before the server follows it: not relayed
    worker.events.publish(before)
    assert wait_for(lambda: client.xlen(prefix) == 1)
    with server.events.hub.subscribe() as subscription:
        server.events.follow_broker()
        relay = server.events._relay
        assert isinstance(relay, RedisRelay)
        assert relay.following.wait(10)
        from_worker = appeared(track=1)
        worker.events.publish(from_worker)
        received = subscription.get(10)
        assert received is not None
        assert (received.id, received.body()) == (from_worker.id, from_worker.body())
        client.xadd(prefix, {"type": "appeared", "id": "x", "data": b"not json"})
        own = appeared(track=2)
        server.events.publish(own)
        assert subscription.get(5) == own
        last = appeared(track=3)
        worker.events.publish(last)
        received = subscription.get(10)
        assert received is not None and received.id == last.id  # the echo of `own` and the bad entry skipped
        assert subscription.get(0.5) is None
    worker.close()
    server.close()
    assert not relay._thread.is_alive()
