"""Build the event bus from settings: the in-process hub always, the broker named by `type`, one publisher per
webhook URL."""

from __future__ import annotations

from collections.abc import Callable

from facegate.config import EventsSettings
from facegate.events.base import Event, EventPublisher
from facegate.events.bus import EventBus, RelayFactory
from facegate.events.delivery import DeliveryPolicy, QueuedPublisher, Transport
from facegate.events.hub import EventHub


def _broker(settings: EventsSettings) -> Transport | None:
    # Each client library is imported only when its broker is configured.
    if settings.type == "nats":
        from facegate.events.nats_jetstream import NatsTransport

        return NatsTransport(settings.url, settings.prefix, timeout=settings.timeout_seconds, max_msgs=settings.max_len)
    if settings.type == "redis":
        from facegate.events.redis_streams import RedisTransport

        return RedisTransport(settings.url, settings.prefix, timeout=settings.timeout_seconds, max_len=settings.max_len)
    if settings.type == "mqtt":
        from facegate.events.mqtt import MqttTransport

        return MqttTransport(settings.url, settings.prefix, timeout=settings.timeout_seconds)
    return None


def build_event_bus(settings: EventsSettings) -> EventBus:
    policy = DeliveryPolicy(
        queue_size=settings.publish_queue,
        attempts=settings.attempts,
        backoff_seconds=settings.backoff_seconds,
        backoff_max_seconds=max(settings.backoff_seconds, settings.backoff_max_seconds),
        flush_seconds=settings.flush_seconds,
    )
    transports: list[Transport] = []
    broker = _broker(settings)
    if broker is not None:
        transports.append(broker)
    if settings.webhooks:
        from facegate.events.webhooks import WebhookTransport

        assert settings.webhook_secret is not None  # EventsSettings requires it with webhooks
        secret = settings.webhook_secret.get_secret_value().encode()
        transports += [WebhookTransport(url, secret, timeout=settings.timeout_seconds) for url in settings.webhooks]
    publishers: list[EventPublisher] = [QueuedPublisher(t, policy) for t in transports]
    relay: RelayFactory | None = None
    if settings.type == "nats":
        from facegate.events.nats_jetstream import NatsRelay

        def relay(deliver: Callable[[Event], None]) -> NatsRelay:
            return NatsRelay(settings.url, settings.prefix, deliver)

    return EventBus(EventHub(settings.queue_size), publishers, relay)
