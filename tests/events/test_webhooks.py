"""events.webhooks: signed POSTs to a real HTTP server started here, retried on 5xx, refused on 4xx."""

from __future__ import annotations

import hashlib
import hmac
import time

from facegate.events.base import Event
from facegate.events.webhooks import signature
from tests.events.conftest import Receiver, RuntimeFactory, appeared, assert_track_event, free_port, wait_for

SECRET = "s3cret-for-tests"


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (README, Events)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    assert signature(b"key", b"{}") == "sha256=" + hmac.new(b"key", b"{}", hashlib.sha256).hexdigest()


def test_signed_deliveries_from_a_runtime(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    rt = make_runtime(webhooks=[receiver.url], webhook_secret=SECRET)
    sent = [
        appeared(track=1),
        Event("updated", appeared(track=1, person_id=None, name=None).data),
        Event("left", {**appeared(track=1).data}),
        appeared(track=2),
    ]
    for event in sent:
        rt.events.publish(event)
    assert wait_for(lambda: len(receiver.received()) == 4)
    for delivery, event in zip(receiver.received(), sent, strict=True):
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["x-facegate-event"] == event.type
        assert delivery.headers["x-facegate-delivery"] == event.id
        assert verify(SECRET, delivery.body, delivery.headers["x-facegate-signature"])
        assert not verify("another secret", delivery.body, delivery.headers["x-facegate-signature"])
        assert_track_event(delivery.json(), event)
    stats = {s.backend: s for s in rt.events.stats()}
    assert (stats["webhook"].published, stats["webhook"].failed, stats["webhook"].dropped) == (4, 0, 0)


def test_a_receiver_failing_twice_gets_the_event_on_retry(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    rt = make_runtime(webhooks=[receiver.url], webhook_secret=SECRET, backoff_seconds=0.05)
    event = appeared()
    started = time.monotonic()
    rt.events.publish(event)
    assert wait_for(lambda: len(receiver.received()) == 3)
    elapsed = time.monotonic() - started
    deliveries = receiver.received()
    # The same signed body and delivery id every time: the receiver can drop duplicates.
    assert {d.body for d in deliveries} == {event.to_json()}
    assert {d.headers["x-facegate-delivery"] for d in deliveries} == {event.id}
    assert all(verify(SECRET, d.body, d.headers["x-facegate-signature"]) for d in deliveries)
    # Backoff 0.05 s, then 0.1 s.
    assert elapsed >= 0.15
    assert wait_for(lambda: rt.events.stats()[1].published == 1)
    assert rt.events.stats()[1].failed == 0


def test_4xx_is_not_retried_and_counts_as_failed(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    receiver.statuses = [400, 410]
    rt = make_runtime(webhooks=[receiver.url], webhook_secret=SECRET, backoff_seconds=0.05)
    rt.events.publish(appeared(track=1))
    rt.events.publish(appeared(track=2))
    assert wait_for(lambda: rt.events.stats()[1].failed == 2)
    time.sleep(0.3)
    assert len(receiver.received()) == 2
    assert rt.events.stats()[1].published == 0


def test_redirects_are_not_followed(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    """urllib would turn a redirected POST into a GET without the body: a moved receiver is reported instead."""
    receiver.statuses = [307]
    rt = make_runtime(webhooks=[receiver.url], webhook_secret=SECRET)
    rt.events.publish(appeared())
    assert wait_for(lambda: rt.events.stats()[1].failed == 1)
    assert len(receiver.received()) == 1


def test_retries_are_bounded(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    receiver.statuses = [500] * 10
    rt = make_runtime(webhooks=[receiver.url], webhook_secret=SECRET, attempts=3, backoff_seconds=0.02)
    rt.events.publish(appeared(track=1))
    rt.events.publish(appeared(track=2))
    # The first event is given up after 3 tries; the second gets through once the receiver recovers.
    receiver.statuses = [500, 500, 500]
    assert wait_for(lambda: rt.events.stats()[1].failed == 1 and rt.events.stats()[1].published == 1)
    bodies = [d.json()["track"] for d in receiver.received()]
    assert bodies == [1, 1, 1, 2]


def test_every_url_has_its_own_queue(make_runtime: RuntimeFactory, receiver: Receiver) -> None:
    """A second URL where nothing listens (connection refused, retried with backoff) does not delay the first."""
    nowhere = f"http://127.0.0.1:{free_port()}/hooks"
    rt = make_runtime(webhooks=[nowhere, receiver.url], webhook_secret=SECRET, backoff_seconds=5.0)
    rt.events.publish(appeared())
    assert wait_for(lambda: len(receiver.received()) == 1, timeout=2.0)
    webhooks = [s for s in rt.events.stats() if s.backend == "webhook"]
    assert [s.published for s in webhooks] == [0, 1]
