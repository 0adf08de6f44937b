"""events.nats_jetstream: events published by a Runtime are stored by JetStream on the real NATS server on 4222
(subject <prefix>.<type>, the documented body, the event id as Nats-Msg-Id) and read back with nats-py."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from facegate.events.base import Event
from facegate.events.nats_jetstream import NatsRelay, _covers, stream_name
from tests.events.conftest import NATS_URL as URL
from tests.events.conftest import RuntimeFactory, appeared, assert_track_event, free_port, wait_for


async def _stored(stream: str) -> list[Any]:
    """Every message of a stream, in order."""
    nc = await nats.connect(URL)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        return [await js.get_msg(stream, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)]
    finally:
        await nc.close()


def test_stream_name() -> None:
    assert stream_name("facegate.events") == "FACEGATE_EVENTS"


def test_subject_filters() -> None:
    assert _covers("facegate.events.>", "facegate.events.>")
    assert _covers("facegate.>", "facegate.events.>")
    assert _covers(">", "facegate.events.>")
    assert not _covers("facegate.events.*", "facegate.events.>")
    assert not _covers("facegate.other.>", "facegate.events.>")
    assert not _covers("facegate.events", "facegate.events.>")


def test_events_are_stored_by_jetstream(make_runtime: RuntimeFactory, prefix: str, stream: str) -> None:
    rt = make_runtime(type="nats", url=URL, prefix=prefix)
    sent = [
        appeared(track=1),
        Event("updated", appeared(track=1, person_id=None, name=None).data),
        Event("left", appeared(track=1).data),
    ]
    for event in sent:
        rt.events.publish(event)
    rt.close()
    messages = asyncio.run(_stored(stream))
    assert [m.subject for m in messages] == [f"{prefix}.appeared", f"{prefix}.updated", f"{prefix}.left"]
    for message, event in zip(messages, sent, strict=True):
        assert json.loads(message.data) == event.body()
        assert message.headers["Nats-Msg-Id"] == event.id
    assert_track_event(json.loads(messages[0].data), sent[0])
    assert_track_event(json.loads(messages[1].data), sent[1])
    assert rt.events.stats()[1].published == 3


def test_a_live_subscriber_gets_them(make_runtime: RuntimeFactory, prefix: str, stream: str) -> None:
    """A core NATS subscription on <prefix>.> sees each event as it is published (what a worker would do)."""
    rt = make_runtime(type="nats", url=URL, prefix=prefix)
    rt.events.publish(appeared(track=0))  # the stream exists once this is stored
    assert wait_for(lambda: rt.events.stats()[1].published == 1)
    sent = appeared(track=7)

    async def listen() -> list[Any]:
        nc = await nats.connect(URL)
        try:
            sub = await nc.subscribe(f"{prefix}.>")
            await nc.flush()
            await asyncio.get_running_loop().run_in_executor(None, rt.events.publish, sent)
            return [await sub.next_msg(timeout=5)]
        finally:
            await nc.close()

    (message,) = asyncio.run(listen())
    assert message.subject == f"{prefix}.appeared"
    assert json.loads(message.data) == sent.body()


def test_an_existing_stream_is_used_as_configured(make_runtime: RuntimeFactory, prefix: str, stream: str) -> None:
    async def create() -> None:
        nc = await nats.connect(URL)
        try:
            await nc.jetstream().add_stream(name=stream, subjects=[f"{prefix}.>"], max_msgs=3)
        finally:
            await nc.close()

    asyncio.run(create())
    rt = make_runtime(type="nats", url=URL, prefix=prefix)
    for track in range(5):
        rt.events.publish(appeared(track=track))
    rt.close()
    assert [json.loads(m.data)["track"] for m in asyncio.run(_stored(stream))] == [2, 3, 4]


def test_a_retried_publish_is_stored_once(make_runtime: RuntimeFactory, prefix: str, stream: str) -> None:
    """The same event published twice (as a retry after a lost acknowledgement would) is one message."""
    rt = make_runtime(type="nats", url=URL, prefix=prefix)
    event = appeared()
    rt.events.publish(event)
    rt.events.publish(event)
    rt.close()
    assert len(asyncio.run(_stored(stream))) == 1


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="needs the nats-server program")
def test_reconnects_after_the_server_restarts(make_runtime: RuntimeFactory, prefix: str, tmp_path: Path) -> None:
    """A private nats-server with JetStream, stopped and started again on its store: the event published while
    it was down is delivered after, in order."""
    port = free_port()
    url = f"nats://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp_path / "js")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def tracks() -> list[int]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream_name(prefix))
            seqs = range(info.state.first_seq, info.state.last_seq + 1)
            return [json.loads((await js.get_msg(stream_name(prefix), s)).data)["track"] for s in seqs]
        finally:
            await nc.close()

    server = start()
    try:
        rt = make_runtime(type="nats", url=url, prefix=prefix, backoff_seconds=0.05, backoff_max_seconds=0.2)
        rt.events.publish(appeared(track=1))
        assert wait_for(lambda: rt.events.stats()[1].published == 1)
        server.terminate()
        server.wait(10)
        rt.events.publish(appeared(track=2))
        server = start()
        assert wait_for(lambda: rt.events.stats()[1].published == 2, timeout=20)
        assert asyncio.run(tracks()) == [1, 2]
        assert rt.events.stats()[1].failed == 0
    finally:
        server.terminate()
        server.wait(10)


def test_a_server_follows_what_other_processes_publish(make_runtime: RuntimeFactory, prefix: str, stream: str) -> None:
    """A server (its SSE) sees the events a `facegate worker` publishes to NATS, and its own once, not twice."""
    server = make_runtime(type="nats", url=URL, prefix=prefix)
    worker = make_runtime(type="nats", url=URL, prefix=prefix)
    with server.events.hub.subscribe() as subscription:
        server.events.follow_broker()
        server.events.follow_broker()  # once is enough; a second call changes nothing
        relay = server.events._relay
        assert isinstance(relay, NatsRelay)
        assert wait_for(lambda: relay._nc is not None and relay._nc.is_connected)
        time.sleep(0.2)  # the subscription registered on the server
        from_worker = appeared(track=1)
        worker.events.publish(from_worker)
        received = subscription.get(10)
        assert received is not None
        assert (received.id, received.body()) == (from_worker.id, from_worker.body())
        own = appeared(track=2)
        server.events.publish(own)
        assert subscription.get(5) == own
        time.sleep(0.5)  # the broker's echo of it arrives meanwhile, and is skipped
        assert subscription.get(0) is None
    worker.close()
    server.close()
    assert not relay._thread.is_alive()
