"""`facegate worker` processes share the streams of one deployment through the real NATS on 127.0.0.1:4222: a
server that runs no streams itself (FACEGATE_STREAMS__RUN_IN_SERVER=false) adds three looped file streams over
HTTP, two workers each run some of them, and when one is killed (SIGKILL, engine workers and all) the other takes
over all three within TAKEOVER_SECONDS; a worker that joins takes its share, one that is stopped gives it back.
The workers' events reach NATS JetStream: an `appeared` for lin_manuel_miranda, enrolled on the server. And the
embedded default: `facegate serve` alone runs a stream added over HTTP, its `appeared` on the SSE feed. And a
split deployment: an ingest worker publishes a stream's frames over NATS, a recognize worker names him in them,
and when that recognize worker is killed a second one takes the stream over."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from facegate.events.nats_jetstream import stream_name
from facegate.stream.worker import owner
from tests.e2e.conftest import Processes, child_env
from tests.support import image_field

NATS_URL = "nats://127.0.0.1:4222"
# A dead worker's heartbeat lives FACEGATE_STREAMS__WORKER_TTL_SECONDS (3 s); the survivor lists the members every
# second and starts the streams at once: ~4-5 s measured. The bound leaves room for a loaded 2-core machine.
TAKEOVER_SECONDS = 15.0


def _wait(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.2)
    raise AssertionError(f"{message}: not within {timeout:.0f} s")


async def _cleanup(bucket: str, events_stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for role_bucket in (bucket, f"{bucket}_ingest", f"{bucket}_recognize"):
            with contextlib.suppress(NotFoundError):
                await js.delete_key_value(role_bucket)
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(events_stream)
    finally:
        await nc.close()


async def _events(events_stream: str) -> list[dict[str, Any]]:
    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(events_stream)
        except NotFoundError:
            return []
        if info.state.messages == 0:  # first_seq 0: there is no message 0 to ask for
            return []
        messages = [
            await js.get_msg(events_stream, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
        return [json.loads(m.data or b"null") for m in messages]
    finally:
        await nc.close()


def named(events: list[dict[str, Any]], person_id: str, after: datetime | None = None) -> list[dict[str, Any]]:
    """Tracks that appeared and were named as the person: an `appeared` naming them, or an `updated` naming a
    track whose `appeared` said unknown (more frames changed the vote). `after`: events published since."""
    announced = {e["track"] for e in events if e["type"] == "appeared"}
    return [
        e
        for e in events
        if e["person_id"] == person_id
        and (e["type"] == "appeared" or (e["type"] == "updated" and e["track"] in announced))
        and (after is None or datetime.fromisoformat(e["at"]) > after)
    ]


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    """A workers bucket and an events prefix of this test only, removed from NATS afterwards."""
    tag = uuid.uuid4().hex[:8]
    bucket, prefix = f"e2e_workers_{tag}", f"e2e.workers{tag}"
    yield bucket, prefix
    asyncio.run(_cleanup(bucket, stream_name(prefix)))


def _split(stream_ids: list[str]) -> tuple[str, str]:
    """Two worker ids between which rendezvous hashing gives each worker at least one of the streams."""
    for n in itertools.count():
        a, b = f"wa{n}", f"wb{n}"
        if {owner(s, (a, b)) for s in stream_ids} == {a, b}:
            return a, b
    raise AssertionError("unreachable")


def c_wins(c: str, b: str, stream_ids: list[str]) -> bool:
    """Whether a worker `c` joining `b` wins some, not all, of the streams."""
    return {owner(s, (b, c)) for s in stream_ids} == {b, c}


def _streams(api: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/api/v1/streams").json()["items"]
    return items


def test_two_workers_share_streams_and_take_over(
    names: tuple[str, str], processes: Processes, tmp_path: Path, dev: Path
) -> None:
    # `names` first: torn down after the processes, so nothing publishes into its NATS stream once it is deleted.
    bucket, prefix = names
    env = child_env(
        tmp_path / "data",
        FACEGATE_ENGINE__TYPE="opencv",
        FACEGATE_STREAMS__RUN_IN_SERVER="false",
        FACEGATE_STREAMS__WORKERS_BUCKET=bucket,
        FACEGATE_STREAMS__SAMPLE_FPS="3",
        FACEGATE_EVENTS__TYPE="nats",
        FACEGATE_EVENTS__URL=NATS_URL,
        FACEGATE_EVENTS__PREFIX=prefix,
    )
    server = processes.start_server("server", env)
    clip = str(dev / "video" / "short_hamilton_clip.mp4")
    with server.client() as api:
        enrolled = api.post(
            "/api/v1/enroll",
            files=[image_field(dev / "lin_manuel_miranda" / "1.png")],
            data={"name": "Lin-Manuel Miranda"},
        )
        assert enrolled.status_code == 201, enrolled.text
        lin = enrolled.json()["person"]["id"]
        ids = []
        for n in range(3):
            created = api.post("/api/v1/streams", json={"source": clip, "name": f"stage-{n}", "loop": True})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        a, b = _split(ids)
        planned = {s: owner(s, (a, b)) for s in ids}
        worker_a, _ = processes.spawn("worker-a", ["worker", "--id", a], env)
        processes.spawn("worker-b", ["worker", "--id", b], env)

        def as_planned() -> bool:
            items = _streams(api)
            return all(i["state"] == "running" and i["frames"] > 0 and i["worker"] == planned[i["id"]] for i in items)

        _wait(as_planned, 120, "both workers running their share")
        # Steady: nothing moves while both live (each stream stays with one worker).
        for _ in range(5):
            time.sleep(0.5)
            assert {i["id"]: i["worker"] for i in _streams(api)} == planned
        # The server runs nothing, so it has no frame of them.
        assert api.get(f"/api/v1/streams/{ids[0]}/frame").json()["error"]["code"] == "no_frame"

        processes.kill(worker_a)  # SIGKILL to its process group: no goodbye, its heartbeat just stops
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)

        def all_on_b() -> bool:
            items = _streams(api)
            return all(
                i["worker"] == b
                and i["state"] == "running"
                and datetime.fromisoformat(i["status_at"]) > killed_wall
                and i["frames"] > 0
                for i in items
            )

        _wait(all_on_b, TAKEOVER_SECONDS, "the survivor running all three streams")
        takeover = time.monotonic() - killed_at
        print(f"takeover of {sum(w == a for w in planned.values())} stream(s) after SIGKILL: {takeover:.1f} s")

        # A third worker joins: it takes the streams it wins from b; stopped (SIGTERM), it hands them back.
        c = next(f"wc{n}" for n in itertools.count() if c_wins(f"wc{n}", b, ids))
        worker_c, _ = processes.spawn("worker-c", ["worker", "--id", c], env)
        joined = {s: owner(s, (b, c)) for s in ids}
        _wait(
            lambda: {i["id"]: i["worker"] for i in _streams(api) if i["state"] == "running"} == joined,
            120,
            "the joining worker running its share",
        )
        left_at, left_wall = time.monotonic(), datetime.now(UTC)
        processes.stop(worker_c)
        _wait(
            lambda: all(
                i["worker"] == b and i["state"] == "running" and datetime.fromisoformat(i["status_at"]) > left_wall
                for i in _streams(api)
            ),
            10,
            "hand back",
        )
        moved = sum(w == c for w in joined.values())
        print(f"hand back of {moved} stream(s) after SIGTERM: {time.monotonic() - left_at:.1f} s")

    # The workers' events went to NATS: he appeared on at least one of the streams.
    events = _wait(lambda: named(asyncio.run(_events(stream_name(prefix))), lin), 60, "appeared, named him")
    assert all(e["stream"].startswith("stage-") for e in events), events


def test_split_deployment_ingest_and_recognize_workers(
    names: tuple[str, str], processes: Processes, tmp_path: Path, dev: Path
) -> None:
    """`facegate worker --role ingest` reads the looped clip and publishes its frames, `--role recognize` names
    him in them (events on NATS, the stream's status written by the recognize worker with the ingest figures);
    SIGKILLed, its stream goes to the other recognize worker, which names him again; and when the ingest
    worker is SIGKILLed, the second ingest worker feeds the stream and he is named once more."""
    bucket, prefix = names
    env = child_env(
        tmp_path / "data",
        FACEGATE_ENGINE__TYPE="opencv",
        FACEGATE_STREAMS__RUN_IN_SERVER="false",
        FACEGATE_STREAMS__WORKERS_BUCKET=bucket,
        FACEGATE_STREAMS__FRAMES_PREFIX=prefix.replace("workers", "frames"),
        FACEGATE_EVENTS__TYPE="nats",
        FACEGATE_EVENTS__URL=NATS_URL,
        FACEGATE_EVENTS__PREFIX=prefix,
    )
    server = processes.start_server("server", env)
    clip = str(dev / "video" / "short_hamilton_clip.mp4")
    with server.client() as api:
        enrolled = api.post(
            "/api/v1/enroll",
            files=[image_field(dev / "lin_manuel_miranda" / "1.png")],
            data={"name": "Lin-Manuel Miranda"},
        )
        assert enrolled.status_code == 201, enrolled.text
        lin = enrolled.json()["person"]["id"]
        created = api.post("/api/v1/streams", json={"source": clip, "name": "stage", "loop": True})
        assert created.status_code == 201, created.text
        stream = created.json()["id"]
        # Two recognize workers, the first of which ranks first for the stream (so it runs it while both live).
        pairs = ((f"ra{n}", f"rb{n}") for n in itertools.count())
        first, second = next((a, b) for a, b in pairs if owner(stream, (a, b)) == a)
        # Two ingest workers likewise: the first one reads the source while both live.
        feeders = ((f"ia{n}", f"ib{n}") for n in itertools.count())
        ingest_a, ingest_b = next((a, b) for a, b in feeders if owner(stream, (a, b)) == a)
        ingest, _ = processes.spawn("ingest-a", ["worker", "--role", "ingest", "--id", ingest_a], env)
        processes.spawn("ingest-b", ["worker", "--role", "ingest", "--id", ingest_b], env)
        recognize_a, _ = processes.spawn("recognize-a", ["worker", "--role", "recognize", "--id", first], env)

        def run_by(worker: str, after: datetime | None = None) -> dict[str, Any] | None:
            item = api.get(f"/api/v1/streams/{stream}").json()
            at = item["status_at"]
            fresh = at is not None and (after is None or datetime.fromisoformat(at) > after)
            # frames and fps are the source's as the ingest worker reads it (29.97 fps, played in real time).
            ok = item["worker"] == worker and item["state"] == "running" and item["frames"] > 0 and fresh
            return item if ok and item["fps"] > 10 else None

        _wait(lambda: run_by(first), 120, "the recognize worker running the stream on the ingest worker's frames")

        def appeared(after: datetime | None = None) -> list[dict[str, Any]]:
            return [e for e in named(asyncio.run(_events(stream_name(prefix))), lin, after) if e["stream"] == "stage"]

        _wait(appeared, 60, "an appeared for him from the split workers")

        _, second_log = processes.spawn("recognize-b", ["worker", "--role", "recognize", "--id", second], env)
        _wait(lambda: f"{first} (8), {second} (8)" in second_log.read_text(), 60, "the second recognize worker joined")
        assert run_by(first) is not None  # the stream stays where it ranks first

        processes.kill(recognize_a)  # SIGKILL: its heartbeat just stops
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
        _wait(lambda: run_by(second, after=killed_wall), TAKEOVER_SECONDS, "the second recognize worker taking over")
        print(f"recognize takeover after SIGKILL: {time.monotonic() - killed_at:.1f} s")
        _wait(lambda: appeared(after=killed_wall), 60, "an appeared for him from the worker that took over")

        # The ingest worker dies: the other one opens the source anew (its frame count starts again), and the
        # recognize worker goes on with its frames.
        read_before = api.get(f"/api/v1/streams/{stream}").json()["frames"]
        processes.kill(ingest)
        killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
        _wait(
            lambda: (item := run_by(second, after=killed_wall)) is not None and 0 < item["frames"] < read_before,
            TAKEOVER_SECONDS,
            "the second ingest worker feeding the stream",
        )
        print(f"ingest takeover after SIGKILL: {time.monotonic() - killed_at:.1f} s")
        _wait(lambda: appeared(after=killed_wall), 60, "an appeared for him on the second ingest worker's frames")
        print(f"named again {time.monotonic() - killed_at:.1f} s after the ingest worker's SIGKILL")


def test_embedded_server_runs_a_stream_added_over_http(processes: Processes, tmp_path: Path, dev: Path) -> None:
    """The default deployment: `facegate serve` alone runs a stream added over HTTP; the event naming
    lin_manuel_miranda (`appeared`, or `updated` when his track was announced before the vote named him)
    reaches a browser-like client on the Server-Sent Events feed."""
    server = processes.start_server("server", child_env(tmp_path / "data", FACEGATE_ENGINE__TYPE="opencv"))
    with server.client() as api:
        enrolled = api.post(
            "/api/v1/enroll",
            files=[image_field(dev / "lin_manuel_miranda" / "1.png")],
            data={"name": "Lin-Manuel Miranda"},
        )
        assert enrolled.status_code == 201, enrolled.text
        lin = enrolled.json()["person"]["id"]

        seen: list[dict[str, Any]] = []
        subscribed, found = threading.Event(), threading.Event()

        def follow() -> None:
            params: dict[str, str | int] = {"types": "appeared,updated", "max_seconds": 90}
            with server.client() as sse, sse.stream("GET", "/api/v1/events", params=params) as response:
                for line in response.iter_lines():
                    subscribed.set()  # the feed opens with a comment line: from here on, nothing is missed
                    if line.startswith("data: "):
                        seen.append(json.loads(line[len("data: ") :]))
                        if seen[-1]["person_id"] == lin:
                            found.set()
                            return

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert subscribed.wait(30), "the SSE feed did not open"
        clip = str(dev / "video" / "short_hamilton_clip.mp4")
        created = api.post("/api/v1/streams", json={"source": clip, "name": "hamilton"})
        assert created.status_code == 201, created.text
        stream_id = created.json()["id"]
        frame = _wait(
            lambda: (r := api.get(f"/api/v1/streams/{stream_id}/frame")).status_code == 200 and r, 30, "a frame"
        )
        assert frame.headers["content-type"] == "image/jpeg"
        assert found.wait(60), f"no event naming him on the feed: {seen}"
        [event] = [e for e in seen if e["person_id"] == lin]
        assert event["type"] == "appeared" or any(
            e["type"] == "appeared" and e["track"] == event["track"] for e in seen
        ), f"named on a track that never appeared: {seen}"
        assert (event["stream"], event["name"]) == ("hamilton", "Lin-Manuel Miranda")
        assert api.get(f"/api/v1/streams/{stream_id}").json()["worker"].startswith("server-")

        assert api.delete(f"/api/v1/streams/{stream_id}").status_code == 204
        assert api.get("/api/v1/streams").json() == {"items": []}
        _wait(lambda: "stream hamilton: stopping" in server.log(), 10, "the pipeline stopped")
