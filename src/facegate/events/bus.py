"""What services and the video pipeline publish to: the in-process hub (always) and the configured publishers."""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from facegate.events.base import Event, EventPublisher
from facegate.events.delivery import DeliveryStats, QueuedPublisher
from facegate.events.hub import EventHub

log = logging.getLogger(__name__)

# Ids of events this process published lately: the relay skips them when the broker echoes them back.
RECENT_IDS = 10_000


class Relay(Protocol):
    def open(self) -> None: ...

    def close(self) -> None: ...


# A relay hands each message it receives to the bus as it came (an event's JSON body, and the event's id).
RelayFactory = Callable[[Callable[[bytes, str], None]], Relay]


class EventBus:
    def __init__(
        self, hub: EventHub, publishers: list[EventPublisher], relay_factory: RelayFactory | None = None
    ) -> None:
        self.hub = hub
        self.publishers = publishers
        self._relay_factory = relay_factory
        self._relay: Relay | None = None
        self._lock = threading.Lock()
        self._recent: collections.deque[str] = collections.deque(maxlen=RECENT_IDS)
        self._recent_set: set[str] = set()
        self._closed = False

    def open(self) -> None:
        self.hub.open()
        for publisher in self.publishers:
            publisher.open()

    def publish(self, event: Event) -> None:
        if self._relay is not None:
            self._remember(event.id)
        self.hub.publish(event)
        for publisher in self.publishers:
            try:
                publisher.publish(event)
            except Exception:
                log.exception("event publisher %s failed; the event reached the other publishers", publisher)

    def follow_broker(self) -> None:
        """Also hand this process's subscribers the events other processes publish to the broker (`facegate
        worker`s running the streams): what /api/v1/events calls. Started once; nothing without a broker that
        supports it (NATS, Redis)."""
        with self._lock:
            if self._relay is not None or self._relay_factory is None or self._closed:
                return
            self._relay = self._relay_factory(self._from_broker)
            self._relay.open()

    def _remember(self, event_id: str) -> None:
        with self._lock:
            if len(self._recent) == self._recent.maxlen:
                self._recent_set.discard(self._recent[0])
            self._recent.append(event_id)
            self._recent_set.add(event_id)

    def _from_broker(self, data: bytes, event_id: str) -> None:
        try:
            event = Event.from_body(json.loads(data), event_id)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("events relay: skipped a message that is no facegate event: %s", exc)
            return
        with self._lock:
            if event.id in self._recent_set:
                return
        self.hub.publish(event)

    def stats(self) -> list[DeliveryStats]:
        """Counts per publisher (several webhooks: one entry each), the in-process subscribers first."""
        return [self.hub.stats()] + [p.stats() for p in self.publishers if isinstance(p, QueuedPublisher)]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            relay, self._relay = self._relay, None
        if relay is not None:
            try:
                relay.close()
            except Exception:
                log.exception("closing the event relay failed")
        for publisher in self.publishers:
            try:
                publisher.close()
            except Exception:
                log.exception("closing event publisher %s failed", publisher)
        self.hub.close()
