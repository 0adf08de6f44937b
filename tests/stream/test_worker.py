"""stream.worker: rendezvous ownership (stable, balanced, only a leaver's streams move) and worker membership on
the real NATS on 127.0.0.1:4222 (workers see each other, a stopped one leaves at once, a killed one after its
TTL, a second worker with the same id runs nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from facegate.config import Settings, StreamSettings
from facegate.stream.worker import WorkerGroup, owner

NATS_URL = "nats://127.0.0.1:4222"
TTL = 1.5


def test_owner_is_stable_balanced_and_moves_only_what_it_must() -> None:
    streams = [str(uuid.uuid4()) for _ in range(300)]
    three = {s: owner(s, ["a", "b", "c"]) for s in streams}
    assert three == {s: owner(s, ["c", "a", "b"]) for s in streams}  # order of members does not matter
    assert all(60 <= n <= 140 for n in Counter(three.values()).values())
    two = {s: owner(s, ["a", "b"]) for s in streams}
    # c left: only c's streams moved.
    assert all(two[s] == three[s] for s in streams if three[s] != "c")
    assert owner("x", []) is None


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    bucket = f"test_workers_{uuid.uuid4().hex[:8]}"
    yield Settings(
        data_dir=tmp_path, streams=StreamSettings(nats_url=NATS_URL, workers_bucket=bucket, worker_ttl_seconds=TTL)
    )

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_key_value(bucket)
        await nc.close()

    asyncio.run(drop())


async def _until(condition: object, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "not within the time"
        await asyncio.sleep(0.05)


def test_membership_join_leave_and_expiry(settings: Settings) -> None:
    async def scenario() -> None:
        a, b = WorkerGroup(settings, "a"), WorkerGroup(settings, "b")
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        changes: list[str] = []
        run_a = asyncio.create_task(a.run(stop_a, lambda: changes.append("a")))
        run_b = asyncio.create_task(b.run(stop_b, lambda: changes.append("b")))
        await _until(lambda: a.members() == b.members() == {"a", "b"}, 5)
        assert changes  # the manager was told
        stream = str(uuid.uuid4())
        assert [a.owns(stream), b.owns(stream)].count(True) == 1

        stop_b.set()  # a graceful leave deletes its key: a sees it at its next listing
        await run_b
        assert b.members() == frozenset() and not b.owns(stream)
        await _until(lambda: a.members() == {"a"}, 2 * a.interval + 0.5)
        assert a.owns(stream)

        # A worker that beats once and dies (no goodbye: its key stays until it expires, TTL after the beat).
        nc = await nats.connect(NATS_URL)
        kv = await nc.jetstream().key_value(settings.streams.workers_bucket)
        await kv.put("c", b"{}")
        beat_at = asyncio.get_running_loop().time()
        await nc.close()
        await _until(lambda: a.members() == {"a", "c"}, 2 * a.interval + 0.5)
        await _until(lambda: a.members() == {"a"}, TTL + 2 * a.interval + 1.0)
        assert asyncio.get_running_loop().time() - beat_at >= TTL - 0.2  # not before its key expired
        stop_a.set()
        await run_a

    asyncio.run(scenario())


def test_a_second_worker_with_the_same_id_runs_nothing(settings: Settings) -> None:
    async def scenario() -> None:
        first, second = WorkerGroup(settings, "same"), WorkerGroup(settings, "same")
        stop = asyncio.Event()
        runs = [asyncio.create_task(first.run(stop, lambda: None))]
        await _until(lambda: first.members() == {"same"}, 5)
        runs.append(asyncio.create_task(second.run(stop, lambda: None)))
        await asyncio.sleep(3 * first.interval)
        stream = str(uuid.uuid4())
        assert first.owns(stream) and not second.owns(stream)
        assert second.members() == frozenset()
        stop.set()
        await asyncio.gather(*runs)

    asyncio.run(scenario())
