"""events.webhook_worker: `facegate worker --role webhooks` delivering from the real NATS JetStream on 4222 to a
real HTTP receiver; the runtime that makes the events only publishes them (FACEGATE_EVENTS__WEBHOOK_DELIVERY)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from facegate.config import EventsSettings
from facegate.events.base import Event
from facegate.events.webhook_worker import consumer_name, retry_delay, run_webhook_worker
from facegate.services.runtime import Runtime
from tests.events.conftest import NATS_URL, Receiver, RuntimeFactory, appeared, assert_track_event, wait_for
from tests.events.test_webhooks import SECRET, verify


def _settings(prefix: str, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "type": "nats",
        "url": NATS_URL,
        "prefix": prefix,
        "webhooks": [receiver.url],
        "webhook_secret": SECRET,
        "webhook_delivery": "workers",
        "backoff_seconds": 0.05,
        "timeout_seconds": 2.0,
        **extra,
    }


def _worker_env(prefix: str, receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    """The environment of a `facegate worker --role webhooks` process with `_settings`."""
    events = {f"FACEGATE_EVENTS__{k.upper()}": str(v) for k, v in _settings(prefix, receiver).items()}
    return {
        **events,
        "FACEGATE_EVENTS__WEBHOOKS": receiver.url,
        "FACEGATE_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }


def _publish_until_received(rt: Runtime, receiver: Receiver, sent: list[Event]) -> bool:
    """A worker's consumer starts with what is published once it exists: publish new events (into `sent`) until
    one arrives."""

    def publish_one() -> bool:
        sent.append(appeared(track=len(sent)))
        rt.events.publish(sent[-1])
        time.sleep(0.2)
        return bool(receiver.received())

    return wait_for(publish_one, timeout=30)


@dataclass
class Worker:
    stop_event: threading.Event
    thread: threading.Thread

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


StartWorker = Callable[[], Worker]


@pytest.fixture
def start_worker(prefix: str, stream: str, receiver: Receiver) -> Iterator[StartWorker]:
    """start_worker() -> a webhook worker running in a thread until stopped or the test ends; returns once its
    consumer exists."""
    workers: list[Worker] = []

    def start() -> Worker:
        settings = EventsSettings(**_settings(prefix, receiver))
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=run_webhook_worker, args=(settings,), kwargs={"stop": stop, "ready": ready})
        thread.start()
        workers.append(Worker(stop, thread))
        assert ready.wait(15), "the webhook worker did not subscribe"
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


def test_settings_refuse_worker_delivery_without_nats() -> None:
    with pytest.raises(ValueError, match="needs type=nats"):
        EventsSettings(webhooks=["http://h/x"], webhook_secret="s", webhook_delivery="workers")


def test_retry_delay_doubles_up_to_the_maximum() -> None:
    settings = EventsSettings(backoff_seconds=0.5, backoff_max_seconds=3.0)
    assert [retry_delay(settings, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert consumer_name("http://a/x") == consumer_name("http://a/x") != consumer_name("http://a/y")


def test_the_worker_delivers_what_a_runtime_publishes(
    make_runtime: RuntimeFactory, receiver: Receiver, prefix: str, start_worker: StartWorker
) -> None:
    start_worker()
    rt = make_runtime(**_settings(prefix, receiver))
    assert "webhook" not in {s.backend for s in rt.events.stats()}  # the runtime itself posts nothing
    sent = [appeared(track=1), Event("updated", appeared(track=1, name=None, person_id=None).data), appeared(2)]
    for event in sent:
        rt.events.publish(event)
    assert wait_for(lambda: len(receiver.received()) == 3)
    by_id = {d.headers["x-facegate-delivery"]: d for d in receiver.received()}
    assert set(by_id) == {e.id for e in sent}
    for event in sent:
        delivery = by_id[event.id]
        assert delivery.headers["x-facegate-event"] == event.type
        assert verify(SECRET, delivery.body, delivery.headers["x-facegate-signature"])
        assert_track_event(delivery.json(), event)


def test_a_failing_receiver_gets_the_event_when_jetstream_redelivers_it(
    make_runtime: RuntimeFactory, receiver: Receiver, prefix: str, start_worker: StartWorker
) -> None:
    receiver.statuses = [503, 500]
    start_worker()
    rt = make_runtime(**_settings(prefix, receiver))
    event = appeared(track=5)
    rt.events.publish(event)
    assert wait_for(lambda: len(receiver.received()) == 3)
    assert [d.headers["x-facegate-delivery"] for d in receiver.received()] == [event.id] * 3
    # Acknowledged on the third try: nothing more comes.
    assert not wait_for(lambda: len(receiver.received()) > 3, timeout=1.5)


def test_a_4xx_is_not_retried(
    make_runtime: RuntimeFactory, receiver: Receiver, prefix: str, start_worker: StartWorker
) -> None:
    receiver.statuses = [410]
    start_worker()
    rt = make_runtime(**_settings(prefix, receiver))
    rt.events.publish(appeared(track=1))
    rt.events.publish(appeared(track=2))
    assert wait_for(lambda: len(receiver.received()) == 2)
    assert not wait_for(lambda: len(receiver.received()) > 2, timeout=1.5)
    assert [d.json()["track"] for d in receiver.received()] == [1, 2]


def test_two_workers_deliver_each_event_once_and_a_restart_catches_up(
    make_runtime: RuntimeFactory, receiver: Receiver, prefix: str, start_worker: StartWorker
) -> None:
    first, second = start_worker(), start_worker()
    rt = make_runtime(**_settings(prefix, receiver))
    sent = [appeared(track=i) for i in range(30)]
    for event in sent:
        rt.events.publish(event)
    assert wait_for(lambda: len(receiver.received()) >= 30)
    assert not wait_for(lambda: len(receiver.received()) > 30, timeout=1.0)
    assert sorted(d.headers["x-facegate-delivery"] for d in receiver.received()) == sorted(e.id for e in sent)

    # Every worker stopped: events published meanwhile wait in the stream and go out when one starts again.
    first.stop()
    second.stop()
    later = appeared(track=99)
    rt.events.publish(later)
    assert not wait_for(lambda: len(receiver.received()) > 30, timeout=1.0)
    start_worker()
    assert wait_for(lambda: len(receiver.received()) == 31)
    assert receiver.received()[-1].headers["x-facegate-delivery"] == later.id


def test_the_command_needs_worker_delivery(tmp_path: Path) -> None:
    env = {"FACEGATE_DATA_DIR": str(tmp_path), "FACEGATE_EVENTS__TYPE": "nats", "PATH": "/usr/bin:/bin"}
    env["COLUMNS"] = "400"  # typer's error box: one line
    run = subprocess.run(
        [sys.executable, "-m", "facegate", "worker", "--role", "webhooks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "FACEGATE_EVENTS__WEBHOOK_DELIVERY=workers" in run.stderr


def test_the_command_delivers_and_stops_on_sigterm(
    make_runtime: RuntimeFactory, receiver: Receiver, prefix: str, stream: str, tmp_path: Path
) -> None:
    env = _worker_env(prefix, receiver, tmp_path)
    worker = subprocess.Popen(
        [sys.executable, "-m", "facegate", "worker", "--role", "webhooks"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        rt = make_runtime(**_settings(prefix, receiver))
        sent: list[Event] = []
        assert _publish_until_received(rt, receiver, sent)
        assert receiver.received()[0].headers["x-facegate-delivery"] in {e.id for e in sent}
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err


def test_a_killed_workers_event_goes_out_from_another_worker(
    make_runtime: RuntimeFactory, receiver: Receiver, prefix: str, start_worker: StartWorker, tmp_path: Path
) -> None:
    """kill -9 of a webhook worker while its receiver is answering: the event was never acknowledged, so
    JetStream hands it to the other worker after the ack wait (2 x timeout + 5 s = 9 s here)."""
    receiver.delays = [5.0]
    env = _worker_env(prefix, receiver, tmp_path)
    doomed = subprocess.Popen([sys.executable, "-m", "facegate", "worker", "--role", "webhooks"], env=env)
    try:
        rt = make_runtime(**_settings(prefix, receiver))
        sent: list[Event] = []
        assert _publish_until_received(rt, receiver, sent)  # the worker took one and its receiver is answering slowly
        doomed.kill()
        doomed.wait(10)
        first = receiver.received()[0].headers["x-facegate-delivery"]
    finally:
        if doomed.poll() is None:
            doomed.kill()
    start_worker()
    assert wait_for(lambda: first in [d.headers["x-facegate-delivery"] for d in receiver.received()[1:]], timeout=30)
