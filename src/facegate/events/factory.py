"""Build the event bus from settings."""

from __future__ import annotations

from facegate.config import EventsSettings
from facegate.events.base import EventPublisher
from facegate.events.bus import EventBus
from facegate.events.hub import EventHub


def build_event_bus(settings: EventsSettings) -> EventBus:
    publishers: list[EventPublisher] = []
    return EventBus(EventHub(settings.queue_size), publishers)
