"""events.bus on a Runtime: the hub and every publisher get each event; the counts reach /metrics and the JSON
telemetry."""

from __future__ import annotations

import redis

from tests.events.conftest import Receiver, RuntimeFactory, appeared, free_port, wait_for


def test_counts_in_the_runtime_telemetry(make_runtime: RuntimeFactory, prefix: str, receiver: Receiver) -> None:
    receiver.statuses = [404]
    rt = make_runtime(
        type="redis",
        url="redis://127.0.0.1:6379/0",
        prefix=prefix,
        webhooks=[receiver.url, f"http://127.0.0.1:{free_port()}/"],
        webhook_secret="k",
        backoff_seconds=10.0,
    )
    try:
        with rt.events.hub.subscribe() as subscription:
            for track in range(3):
                rt.events.publish(appeared(track=track))
            assert [subscription.get(0).data["track"] for _ in range(3)] == [0, 1, 2]  # type: ignore[union-attr]
        assert wait_for(lambda: rt.events.stats()[1].published == 3)
        # The receiver refuses the first (404: failed) and takes the others; the dead URL retries the first
        # (in flight, backing off) and queues the others.
        assert wait_for(lambda: (rt.events.stats()[2].failed, rt.events.stats()[2].published) == (1, 2))
        assert wait_for(lambda: rt.events.stats()[3].queued == 2)
        text = rt.telemetry.prometheus_text().decode()
        assert 'facegate_events_published_total{backend="redis"} 3.0' in text
        assert 'facegate_events_published_total{backend="subscribers"} 3.0' in text
        assert 'facegate_events_failed_total{backend="webhook"} 1.0' in text
        assert 'facegate_events_published_total{backend="webhook"} 2.0' in text
        assert 'facegate_events_queued{backend="webhook"} 2.0' in text
        counters = rt.telemetry.counter_values()
        assert counters["facegate_events_published"]["backend=redis"] == 3.0
        assert counters["facegate_events_failed"]["backend=webhook"] == 1.0
    finally:
        with redis.Redis() as client:
            client.delete(prefix)
