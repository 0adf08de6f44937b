"""stream.worker: rendezvous ownership (stable, balanced, only a leaver's streams move), the capacity-bounded
assignment (deterministic, within every worker's slots, the newest streams wait, little movement), and worker
membership on the real NATS on 127.0.0.1:4222 (workers see each other and each other's capacity, a stopped one
leaves at once, a killed one after its TTL, a second worker with the same id runs nothing, roles apart)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from facegate.config import EventsSettings, Settings, StreamSettings
from facegate.errors import ConfigurationError
from facegate.stream.worker import UNBOUNDED, WorkerGroup, assign, owner, run_worker

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


def _moved(before: dict[str, str | None], after: dict[str, str | None]) -> int:
    return sum(before[s] != after[s] for s in before)


def test_assign_is_deterministic_and_respects_capacity() -> None:
    streams = [str(uuid.uuid4()) for _ in range(40)]
    capacity = {"a": 5, "b": 20, "c": 10}
    owners = assign(streams, capacity)
    # Any worker computes the same map, whatever order it lists the members in.
    assert owners == assign(streams, dict(reversed(capacity.items())))
    load = Counter(w for w in owners.values() if w is not None)
    assert all(load[w] <= n for w, n in capacity.items())
    # 35 slots for 40 streams: every slot used, and the streams that wait are the 5 newest (last added).
    assert sum(load.values()) == 35
    assert [s for s in streams if owners[s] is None] == streams[35:]
    # A stream goes to a lower-ranked worker (or none) only when every higher-ranked one is full.
    for s, w in owners.items():
        above = [x for x in capacity if x != w and (w is None or owner(s, [x, w]) == x)]
        assert all(load[x] == capacity[x] for x in above), (s, w)


def test_assign_with_room_to_spare_is_rendezvous_hashing() -> None:
    streams = [str(uuid.uuid4()) for _ in range(60)]
    roomy = {w: 100 for w in "abc"}
    assert assign(streams, roomy) == {s: owner(s, "abc") for s in streams}
    # A member whose heartbeat names no capacity is unbounded.
    assert assign(streams, {"a": UNBOUNDED}) == dict.fromkeys(streams, "a")
    # A new stream takes a free slot and moves nothing.
    tight = {"a": 20, "b": 20, "c": 21}
    before = assign(streams, tight)
    after = assign([*streams, "new"], tight)
    assert {s: after[s] for s in streams} == before and after["new"] is not None


def test_assign_moves_little_when_a_worker_joins_or_leaves() -> None:
    rng = random.Random(7)
    streams = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(120)]
    # With room to spare: exactly the leaver's streams move, and only those the joiner wins.
    three = assign(streams, {"a": 100, "b": 100, "c": 100})
    two = assign(streams, {"a": 100, "b": 100})
    assert _moved(three, two) == sum(w == "c" for w in three.values())
    four = assign(streams, {"a": 100, "b": 100, "c": 100, "d": 100})
    assert {s for s in streams if four[s] != three[s]} == {s for s in streams if four[s] == "d"}

    # Slots short (every worker full): a move can push a newer stream on to its next worker, so somewhat more
    # than the leaver's share moves, but far from a reshuffle (about 1/3 of the streams would be chance).
    full = {"a": 40, "b": 40, "c": 40}
    before = assign(streams, full)
    after = assign(streams, {"a": 60, "b": 60})  # c leaves; the others have room for all its streams
    left = sum(w == "c" for w in before.values())
    assert left <= _moved(before, after) <= left + len(streams) // 6, (left, _moved(before, after))
    assert all(w in ("a", "b") for w in after.values())


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
        small = settings.model_copy(update={"streams": settings.streams.model_copy(update={"max_streams": 3})})
        a, b = WorkerGroup(settings, "a"), WorkerGroup(small, "b")
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        changes: list[str] = []
        run_a = asyncio.create_task(a.run(stop_a, lambda: changes.append("a")))
        run_b = asyncio.create_task(b.run(stop_b, lambda: changes.append("b")))
        # Each sees the other, with the capacity it announced (FACEGATE_STREAMS__MAX_STREAMS).
        await _until(lambda: a.members() == b.members() == {"a": 8, "b": 3}, 5)
        assert changes  # the manager was told
        stream = str(uuid.uuid4())
        assert [stream in a.share([stream]).run, stream in b.share([stream]).run].count(True) == 1

        stop_b.set()  # a graceful leave deletes its key: a sees it at its next listing
        await run_b
        assert b.members() == {} and b.share([stream]).run == frozenset()
        await _until(lambda: a.members() == {"a": 8}, 2 * a.interval + 0.5)
        assert a.share([stream]).run == {stream}

        # A worker that beats once and dies (no goodbye: its key stays until it expires, TTL after the beat).
        nc = await nats.connect(NATS_URL)
        kv = await nc.jetstream().key_value(settings.streams.workers_bucket)
        await kv.put("c", b"{}")
        beat_at = asyncio.get_running_loop().time()
        await nc.close()
        await _until(lambda: a.members() == {"a": 8, "c": UNBOUNDED}, 2 * a.interval + 0.5)
        await _until(lambda: a.members() == {"a": 8}, TTL + 2 * a.interval + 1.0)
        assert asyncio.get_running_loop().time() - beat_at >= TTL - 0.2  # not before its key expired
        stop_a.set()
        await run_a

    asyncio.run(scenario())


def test_a_second_worker_with_the_same_id_runs_nothing(settings: Settings) -> None:
    async def scenario() -> None:
        first, second = WorkerGroup(settings, "same"), WorkerGroup(settings, "same")
        stop = asyncio.Event()
        runs = [asyncio.create_task(first.run(stop, lambda: None))]
        await _until(lambda: first.members() == {"same": 8}, 5)
        runs.append(asyncio.create_task(second.run(stop, lambda: None)))
        await asyncio.sleep(3 * first.interval)
        stream = str(uuid.uuid4())
        assert first.share([stream]).run == {stream} and second.share([stream]).run == frozenset()
        assert second.members() == {}
        stop.set()
        await asyncio.gather(*runs)

    asyncio.run(scenario())


def test_roles_have_their_own_members_and_unplaced_streams_wait_with_one_worker(settings: Settings) -> None:
    """Ingest and recognize workers share the streams among their own role only; a stream beyond the role's
    capacity is reported as waiting by exactly one of its workers."""

    async def scenario() -> None:
        one = settings.model_copy(update={"streams": settings.streams.model_copy(update={"max_streams": 1})})
        ingest = WorkerGroup(one, "i1", role="ingest")
        recognize = [WorkerGroup(one, "r1", role="recognize"), WorkerGroup(one, "r2", role="recognize")]
        stop = asyncio.Event()
        runs = [asyncio.create_task(g.run(stop, lambda: None)) for g in (ingest, *recognize)]
        try:
            await _until(lambda: all(r.members() == {"r1": 1, "r2": 1} for r in recognize), 5)
            assert ingest.members() == {"i1": 1}
            assert ingest.bucket == f"{settings.streams.workers_bucket}_ingest"
            streams = [str(uuid.uuid4()) for _ in range(3)]
            shares = [r.share(streams) for r in recognize]
            assert sorted(len(s.run) for s in shares) == [1, 1]  # one slot each, both used
            assert not shares[0].run & shares[1].run
            assert sum(len(s.waiting) for s in shares) == 1  # the third, newest stream waits
            assert shares[0].waiting | shares[1].waiting == {streams[2]}
            assert ingest.share(streams) == ingest.share(streams)  # deterministic
            assert len(ingest.share(streams).run) == 1 and len(ingest.share(streams).waiting) == 2
        finally:
            stop.set()
            await asyncio.gather(*runs)

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        for role in ("ingest", "recognize"):
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_key_value(f"{settings.streams.workers_bucket}_{role}")
        await nc.close()

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(drop())


def test_frames_under_the_events_prefix_are_refused(tmp_path: Path) -> None:
    """The events' JetStream stream holds `<events prefix>.>` for days: frames there would pile up."""
    settings = Settings(
        data_dir=tmp_path,
        events=EventsSettings(type="nats", prefix="acme"),
        streams=StreamSettings(nats_url=NATS_URL, frames_prefix="acme"),
    )
    with pytest.raises(ConfigurationError, match="under the events' prefix"):
        run_worker(settings, "x", role="recognize")
    assert list(tmp_path.iterdir()) == []  # refused before opening anything (no store created)
