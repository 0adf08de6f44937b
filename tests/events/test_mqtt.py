"""events.mqtt: events published by a Runtime reach a paho-mqtt subscriber on the real Mosquitto on 1883
(facegate/…/<type>, QoS 1), with a retained availability topic (online while connected, offline after)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facegate.events.base import Event
from facegate.events.mqtt import topic_base
from tests.events.conftest import RuntimeFactory, appeared, assert_track_event

HOST, PORT = "127.0.0.1", 1883
URL = f"mqtt://{HOST}:{PORT}"


class Subscriber:
    def __init__(self, topic: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        subscribed = threading.Event()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        assert subscribed.wait(5)

    def next(self, timeout: float = 5.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def base(prefix: str) -> Iterator[str]:
    base = topic_base(prefix)
    yield base
    # Clear the retained availability message this test left on the shared broker.
    cleaner = mqtt.Client(CallbackAPIVersion.VERSION2)
    cleaner.connect(HOST, PORT)
    cleaner.loop_start()
    cleaner.publish(f"{base}/availability", b"", qos=1, retain=True).wait_for_publish(5)
    cleaner.disconnect()
    cleaner.loop_stop()


def test_topic_base() -> None:
    assert topic_base("facegate.events") == "facegate/events"


def test_events_reach_a_subscriber(make_runtime: RuntimeFactory, prefix: str, base: str) -> None:
    subscriber = Subscriber(f"{base}/#")
    try:
        rt = make_runtime(type="mqtt", url=URL, prefix=prefix)
        online = subscriber.next()
        assert (online.topic, online.payload, online.retain) == (f"{base}/availability", b"online", False)
        sent = [
            appeared(track=1),
            Event("updated", appeared(track=1, person_id=None, name=None).data),
            Event("left", appeared(track=1).data),
        ]
        for event in sent:
            rt.events.publish(event)
        received = [subscriber.next(), subscriber.next(), subscriber.next()]
        assert [m.topic for m in received] == [f"{base}/appeared", f"{base}/updated", f"{base}/left"]
        assert all(m.qos == 1 and not m.retain for m in received)
        assert_track_event(json.loads(received[0].payload), sent[0])
        assert_track_event(json.loads(received[1].payload), sent[1])
        assert json.loads(received[2].payload) == sent[2].body()
        rt.close()
        offline = subscriber.next()
        assert (offline.topic, offline.payload) == (f"{base}/availability", b"offline")
    finally:
        subscriber.close()
    assert rt.events.stats()[1].published == 3


def test_availability_is_retained(make_runtime: RuntimeFactory, prefix: str, base: str) -> None:
    """A client that subscribes later (Home Assistant after a restart) learns facegate's state at once."""
    rt = make_runtime(type="mqtt", url=URL, prefix=prefix)
    rt.events.publish(appeared())
    # The bus connects in the background: a subscriber there before it says "online" gets it live (retain
    # False). Once one has seen it, the broker holds it, and every later subscriber is sent the retained copy.
    first = Subscriber(f"{base}/availability")
    try:
        assert first.next().payload == b"online"
    finally:
        first.close()
    late = Subscriber(f"{base}/availability")
    try:
        message = late.next()
        assert (message.payload, message.retain) == (b"online", True)
    finally:
        late.close()
    rt.close()
    later = Subscriber(f"{base}/availability")
    try:
        assert later.next().payload == b"offline"
    finally:
        later.close()


def test_the_will_says_offline_when_the_process_dies(prefix: str, base: str) -> None:
    """A facegate process killed outright (no clean disconnect): the broker publishes its will."""
    script = f"""
import os, signal, time
from facegate.config import EventsSettings
from facegate.events.factory import build_event_bus
bus = build_event_bus(EventsSettings(type="mqtt", url="{URL}", prefix="{prefix}"))
bus.open()
while bus.publishers[0].transport._client is None:
    time.sleep(0.02)
time.sleep(0.3)
os.kill(os.getpid(), signal.SIGKILL)
"""
    subscriber = Subscriber(f"{base}/availability")
    try:
        child = subprocess.run([sys.executable, "-c", script], timeout=60)
        assert child.returncode == -signal.SIGKILL
        assert subscriber.next().payload == b"online"
        assert subscriber.next().payload == b"offline"
    finally:
        subscriber.close()
