"""events.hub: bounded per-subscriber queues, wake-ups for asyncio consumers, counts."""

from __future__ import annotations

import threading

from facegate.events.hub import EventHub
from tests.events.conftest import appeared


def test_every_subscriber_gets_every_event() -> None:
    hub = EventHub(queue_size=10)
    with hub.subscribe() as a, hub.subscribe() as b:
        event = appeared()
        hub.publish(event)
        assert a.get(0) is event
        assert b.get(0) is event
        assert a.get(0) is None
    hub.publish(appeared())  # nobody subscribed any more
    assert hub.stats().published == 2


def test_a_slow_subscriber_loses_its_oldest() -> None:
    hub = EventHub(queue_size=3)
    with hub.subscribe() as slow:
        for track in range(5):
            hub.publish(appeared(track=track))
        tracks = []
        while (event := slow.get(0)) is not None:
            tracks.append(event.data["track"])
        assert tracks == [2, 3, 4]
        assert slow.dropped == 2
    assert (hub.stats().published, hub.stats().dropped) == (5, 2)


def test_notify_after_each_event_and_on_close() -> None:
    hub = EventHub()
    calls: list[str] = []
    subscription = hub.subscribe(notify=lambda: calls.append(threading.current_thread().name))
    hub.publish(appeared())
    assert len(calls) == 1
    assert not subscription.closed
    hub.close()
    assert subscription.closed
    assert len(calls) == 2
    hub.publish(appeared())  # after close: no subscribers
    assert len(calls) == 2
