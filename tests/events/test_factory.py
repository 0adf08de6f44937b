"""events.factory and EventsSettings: the broker named by FACEGATE_EVENTS__TYPE, one publisher per webhook;
malformed URLs refused when settings load, unreachable ones left to retry."""

from __future__ import annotations

import pytest

from facegate.config import EventsSettings, Settings
from facegate.errors import ConfigurationError
from facegate.events.delivery import QueuedPublisher
from facegate.events.factory import build_event_bus


def backends(settings: EventsSettings) -> list[tuple[str, str]]:
    bus = build_event_bus(settings)
    return [(p.transport.backend, p.transport.target) for p in bus.publishers if isinstance(p, QueuedPublisher)]


def test_none_is_in_process_only() -> None:
    assert backends(EventsSettings()) == []


@pytest.mark.parametrize(
    ("type_", "default"),
    [("nats", "nats://127.0.0.1:4222"), ("redis", "redis://127.0.0.1:6379/0"), ("mqtt", "mqtt://127.0.0.1:1883")],
)
def test_each_type_and_its_default_url(type_: str, default: str) -> None:
    assert backends(EventsSettings(type=type_)) == [(type_, default)]  # type: ignore[arg-type]


def test_webhooks_come_in_addition_to_the_broker() -> None:
    settings = EventsSettings(
        type="redis", webhooks=["http://a.example/hook", "https://b.example/x?token=1"], webhook_secret="k"
    )
    assert backends(settings) == [
        ("redis", "redis://127.0.0.1:6379/0"),
        ("webhook", "http://a.example/hook"),
        ("webhook", "https://b.example/x"),
    ]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEGATE_EVENTS__TYPE", "mqtt")
    monkeypatch.setenv("FACEGATE_EVENTS__URL", "mqtts://user:pw@broker.lan")
    monkeypatch.setenv("FACEGATE_EVENTS__WEBHOOKS", "http://a.example/1, http://b.example/2")
    monkeypatch.setenv("FACEGATE_EVENTS__WEBHOOK_SECRET", "k")
    events = Settings().events
    assert (events.type, events.url) == ("mqtt", "mqtts://user:pw@broker.lan")
    assert events.webhooks == ["http://a.example/1", "http://b.example/2"]
    monkeypatch.setenv("FACEGATE_EVENTS__WEBHOOKS", '["http://c.example/3"]')
    assert Settings().events.webhooks == ["http://c.example/3"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FACEGATE_EVENTS__TYPE": "nats", "FACEGATE_EVENTS__URL": "redis://x"}, "a nats URL starts with"),
        ({"FACEGATE_EVENTS__TYPE": "mqtt", "FACEGATE_EVENTS__URL": "mqtt://"}, "names no host"),
        ({"FACEGATE_EVENTS__WEBHOOKS": "ftp://x/y", "FACEGATE_EVENTS__WEBHOOK_SECRET": "k"}, "not an http"),
        ({"FACEGATE_EVENTS__WEBHOOKS": "http://x/y"}, "webhooks need webhook_secret"),
        ({"FACEGATE_EVENTS__PREFIX": "facegate events"}, "FACEGATE_EVENTS__PREFIX"),
        ({"FACEGATE_EVENTS__WEBHOOKS": "[not json", "FACEGATE_EVENTS__WEBHOOK_SECRET": "k"}, "WEBHOOKS"),
    ],
)
def test_malformed_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message):
        Settings()
