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


def test_a_subscriber_resuming_after_an_event_gets_the_kept_ones_since() -> None:
    hub = EventHub(queue_size=10, replay_size=3)
    sent = [appeared(track=track) for track in range(5)]
    for event in sent:
        hub.publish(event)
    with hub.subscribe(after=sent[2].id) as resumed:
        assert (resumed.replay, resumed.gap) == (sent[3:], False)
        assert resumed.get(0) is None  # the replayed events are not queued again
        later = appeared(track=5)
        hub.publish(later)
        assert resumed.get(0) is later
    with hub.subscribe(after=later.id) as current:  # the newest: nothing to catch up on
        assert (current.replay, current.gap) == ([], False)
    with hub.subscribe() as plain:  # no id: live events only
        assert (plain.replay, plain.gap) == ([], False)


def test_resuming_after_an_event_no_longer_kept_is_a_gap_with_every_kept_event() -> None:
    hub = EventHub(queue_size=10, replay_size=3)
    sent = [appeared(track=track) for track in range(5)]
    for event in sent:
        hub.publish(event)
    with hub.subscribe(after=sent[0].id) as old, hub.subscribe(after="never-seen") as unknown:
        assert (old.replay, old.gap) == (sent[2:], True)
        assert (unknown.replay, unknown.gap) == (sent[2:], True)
    nothing_kept = EventHub(replay_size=0)
    nothing_kept.publish(sent[0])
    with nothing_kept.subscribe(after=sent[0].id) as resumed:
        assert (resumed.replay, resumed.gap) == ([], True)


def test_resuming_while_events_are_published_misses_none_and_repeats_none() -> None:
    hub = EventHub(queue_size=10_000, replay_size=10_000)
    first = appeared(track=-1)
    hub.publish(first)
    stop = threading.Event()
    published: list[int] = []

    def publish() -> None:
        track = 0
        while not stop.is_set() and track < 5000:
            hub.publish(appeared(track=track))
            published.append(track)
            track += 1

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        subscriptions = [hub.subscribe(after=first.id) for _ in range(20)]
    finally:
        stop.set()
        thread.join()
    for subscription in subscriptions:
        seen = [e.data["track"] for e in subscription.replay]
        while (event := subscription.get(0)) is not None:
            seen.append(event.data["track"])
        assert seen == published
        subscription.close()
