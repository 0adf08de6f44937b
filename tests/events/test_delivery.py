"""events.delivery: publishing never waits for a backend. With a dead broker (nothing listens on the port)
publish returns in microseconds, the queue keeps the newest events, and every event is counted once."""

from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest
import redis

from facegate.events.delivery import display_url
from tests.events.conftest import RuntimeFactory, appeared, free_port, wait_for


@pytest.mark.parametrize("backend", ["nats", "redis", "mqtt"])
def test_a_dead_broker_does_not_block_publish(
    make_runtime: RuntimeFactory, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{backend}://127.0.0.1:{free_port()}"
    caplog.set_level(logging.WARNING, logger="facegate.events")
    rt = make_runtime(type=backend, url=url, publish_queue=10, backoff_seconds=0.05)
    assert wait_for(lambda: "cannot reach" in caplog.text)
    started = time.perf_counter()
    for track in range(1000):
        rt.events.publish(appeared(track=track))
    elapsed = time.perf_counter() - started
    # Not a speed target: a publish that waited for the dead broker would wait at least one backoff (0.05 s)
    # each, 50 s for these 1000. The bound sits far from both that and a busy machine (0.72 s seen in a CI run
    # where the former 0.5 s bound failed).
    assert elapsed < 10.0, f"1000 publishes took {elapsed:.3f}s: publish waits for the broker"
    (stats,) = [s for s in rt.events.stats() if s.backend == backend]
    assert (stats.published, stats.failed, stats.queued, stats.dropped) == (0, 0, 10, 990)
    started = time.perf_counter()
    rt.close()
    assert time.perf_counter() - started < 2.0
    (stats,) = [s for s in rt.events.stats() if s.backend == backend]
    assert (stats.published, stats.failed, stats.queued, stats.dropped) == (0, 0, 0, 1000)
    assert f"cannot reach {backend} {url}" in caplog.text
    assert "closed with 10 events undelivered" in caplog.text


def test_the_queue_keeps_the_newest(make_runtime: RuntimeFactory, prefix: str) -> None:
    """Events queued while the broker is away go out oldest first once it answers; the oldest overflow."""
    port = free_port()
    rt = make_runtime(
        type="redis", url=f"redis://127.0.0.1:{port}/0", prefix=prefix, publish_queue=3, backoff_seconds=0.05,
        backoff_max_seconds=0.1,
    )  # fmt: skip
    for track in range(5):
        rt.events.publish(appeared(track=track))
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""], stdout=subprocess.DEVNULL
    )
    try:
        assert wait_for(lambda: rt.events.stats()[1].published == 3)
        with redis.Redis(port=port) as client:
            assert [json.loads(f[b"data"])["track"] for _, f in client.xrange(prefix)] == [2, 3, 4]
        assert rt.events.stats()[1].dropped == 2
    finally:
        server.terminate()
        server.wait(10)


def test_display_url_hides_credentials_and_query() -> None:
    assert display_url("mqtt://user:pw@broker.lan:1883") == "mqtt://broker.lan:1883"
    assert display_url("https://hooks.example.com/x?token=abc") == "https://hooks.example.com/x"
    assert display_url("redis://:pw@[::1]:6380/0") == "redis://[::1]:6380/0"
