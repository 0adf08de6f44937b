"""What services and the video pipeline publish to: the in-process hub (always) and the configured publishers."""

from __future__ import annotations

import logging

from facegate.events.base import Event, EventPublisher
from facegate.events.delivery import DeliveryStats, QueuedPublisher
from facegate.events.hub import EventHub

log = logging.getLogger(__name__)


class EventBus:
    def __init__(self, hub: EventHub, publishers: list[EventPublisher]) -> None:
        self.hub = hub
        self.publishers = publishers

    def open(self) -> None:
        self.hub.open()
        for publisher in self.publishers:
            publisher.open()

    def publish(self, event: Event) -> None:
        self.hub.publish(event)
        for publisher in self.publishers:
            try:
                publisher.publish(event)
            except Exception:
                log.exception("event publisher %s failed; the event reached the other publishers", publisher)

    def stats(self) -> list[DeliveryStats]:
        """Counts per publisher (several webhooks: one entry each), the in-process subscribers first."""
        return [self.hub.stats()] + [p.stats() for p in self.publishers if isinstance(p, QueuedPublisher)]

    def close(self) -> None:
        for publisher in self.publishers:
            try:
                publisher.close()
            except Exception:
                log.exception("closing event publisher %s failed", publisher)
        self.hub.close()
