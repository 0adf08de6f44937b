"""MQTT (FACEGATE_EVENTS__TYPE=mqtt), for Home Assistant and Frigate users: each event is published with QoS 1 to
`<prefix as a topic>/<type>` (facegate.events -> facegate/events/appeared), not retained. `<topic>/availability`
says `online` (retained) while facegate is connected and `offline` when it closes or its connection dies (the
broker publishes the will), as Home Assistant's availability topics expect.

URLs: mqtt://[user:password@]host[:1883], mqtts:// for TLS (port 8883 by default, system CA certificates).
"""

from __future__ import annotations

import threading
import uuid
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from facegate.events.base import Event
from facegate.events.delivery import display_url

DEFAULT_URL = "mqtt://127.0.0.1:1883"
KEEPALIVE_SECONDS = 30


def topic_base(prefix: str) -> str:
    return prefix.replace(".", "/")


class MqttTransport:
    backend = "mqtt"

    def __init__(self, url: str | None, prefix: str, *, timeout: float) -> None:
        self.url = url or DEFAULT_URL
        self.target = display_url(self.url)
        self.base = topic_base(prefix)
        self.availability = f"{self.base}/availability"
        self.timeout = timeout
        self._client: mqtt.Client | None = None

    def connect(self) -> None:
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"facegate-{uuid.uuid4().hex[:12]}")
        client.connect_timeout = self.timeout
        if parts.username:
            client.username_pw_set(unquote(parts.username), unquote(parts.password) if parts.password else None)
        if tls:
            client.tls_set()
        client.will_set(self.availability, "offline", qos=1, retain=True)
        answered = threading.Event()
        outcome: list[ReasonCode] = []

        def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
            outcome.append(reason)
            answered.set()

        client.on_connect = on_connect
        client.connect(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), KEEPALIVE_SECONDS)
        # paho's network thread; it would also reconnect by itself, but the delivery thread owns that policy
        # and makes a new client after any failure.
        client.loop_start()
        try:
            if not answered.wait(self.timeout):
                raise TimeoutError("no CONNACK from the broker")
            if outcome[0].is_failure:
                raise ConnectionError(f"the broker refused the connection: {outcome[0]}")
            self._client = client
            self._publish(self.availability, b"online", retain=True)
        except BaseException:
            self._client = None
            client.loop_stop()
            client.disconnect()
            raise

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(self.timeout)  # raises when the message could not be queued or was refused
        if not info.is_published():
            raise TimeoutError(f"no PUBACK for {topic} within {self.timeout:g}s")

    def send(self, event: Event) -> None:
        self._publish(f"{self.base}/{event.type}", event.to_json())

    def disconnect(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            # A clean disconnect does not fire the will: say offline ourselves (when the link still works).
            if client.is_connected():
                self._publish(self.availability, b"offline", retain=True)
        finally:
            self._client = None
            client.disconnect()
            client.loop_stop()
