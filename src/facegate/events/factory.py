"""Build the event bus from settings: the in-process hub always, the broker named by `type`, one publisher per
webhook URL."""

from __future__ import annotations

from collections.abc import Callable

from facegate.config import EventsSettings
from facegate.events.base import EventPublisher
from facegate.events.bus import EventBus, Relay, RelayFactory
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


def _relay(settings: EventsSettings) -> RelayFactory | None:
    """How a server follows what other processes publish to the broker (MQTT and webhooks: no relay)."""
    if settings.type == "nats":
        from facegate.events.nats_jetstream import NatsRelay

        def nats_relay(deliver: Callable[[bytes, str], None]) -> Relay:
            return NatsRelay(settings.url, settings.prefix, deliver)

        return nats_relay
    if settings.type == "redis":
        from facegate.events.redis_streams import RedisRelay

        def redis_relay(deliver: Callable[[bytes, str], None]) -> Relay:
            return RedisRelay(settings.url, settings.prefix, deliver, timeout=settings.timeout_seconds)

        return redis_relay
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
    if settings.webhooks and settings.webhook_delivery == "inline":  # else `facegate worker --role webhooks`
        from facegate.events.webhooks import WebhookTransport

        assert settings.webhook_secret is not None  # EventsSettings requires it with webhooks
        secret = settings.webhook_secret.get_secret_value().encode()
        transports += [WebhookTransport(url, secret, timeout=settings.timeout_seconds) for url in settings.webhooks]
    publishers: list[EventPublisher] = [QueuedPublisher(t, policy) for t in transports]
    hub = EventHub(settings.queue_size, replay_size=settings.replay_size)
    return EventBus(hub, publishers, _relay(settings))
