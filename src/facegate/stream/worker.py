"""`facegate worker`: processes that share the deployment's streams through NATS, and take over a dead one's.

Roles: `all` runs each of its streams whole (source, detection, tracking, identity, events); a split deployment
runs `ingest` workers (read and sample the source, publish the frames: stream.relay) and `recognize` workers (the
pipeline on those frames) instead, each role sharing the streams among its own members (a bucket per role), so
every stream has one ingest worker and one recognize worker at a time. Event delivery is the events backend's.

Membership: each worker puts its id into a JetStream key-value bucket every `worker_ttl_seconds / 3`; the bucket
keeps a value `worker_ttl_seconds` (its max age), so a worker that stops beating (killed, hung, cut off) drops out
of `keys()` that long after its last beat. Every worker lists the bucket as often as it beats.

Ownership: rendezvous hashing of each stream id over the live workers' ids, bounded by each worker's capacity
(its `max_streams`, which it puts in its heartbeat): the streams, oldest first, each go to the highest-ranked
worker that still has a free slot (`assign`). Each worker computes the same map from the same members,
capacities and streams, with no messages between them. With room to spare a change of membership moves only
the streams of the worker that joined or left; when slots run short a move can push a newer stream on to its
next worker. A stream added later never displaces an older one: streams beyond the total capacity are the
newest, and wait (reported as `waiting` by the worker that would rank first for them). Streams themselves are
rows in the shared store (SQLite file or PostgreSQL), which every worker's StreamManager reads every
`poll_seconds`.

How long two workers can run one stream (nothing else fences them):
- a worker joins: the others see it at their next listing, at most `worker_ttl_seconds / 3` after it starts the
  streams it wins, and stop those at once (plus the time a pipeline takes to notice its stop: one frame);
- a worker is cut off from NATS but alive: its key expires `worker_ttl_seconds` after its last beat and another
  takes its streams at its next listing; the cut-off worker stops all of its streams once its own last
  successful beat is `worker_ttl_seconds` old, so the overlap is at most one listing interval as well.
A worker stopped gracefully (SIGTERM, Ctrl-C) deletes its key, so its streams move at the others' next listing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from facegate.config import Settings
from facegate.errors import ConfigurationError
from facegate.services.runtime import Runtime, StoreRuntime
from facegate.store.base import StreamRow
from facegate.stream.manager import (
    RunnerFactory,
    Share,
    StreamManager,
    StreamRunner,
    default_worker_id,
    pipelines,
)
from facegate.stream.pipeline import Pipeline, StreamOptions
from facegate.stream.relay import FramePublisher, FrameRelay, RelayedPipeline, RelayedSource

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"
Role = Literal["all", "ingest", "recognize"]
ROLES: tuple[Role, ...] = ("all", "ingest", "recognize")
# The capacity of a member whose heartbeat names none (a worker of an earlier version).
UNBOUNDED = 1 << 30


def _rank(stream_id: str, worker: str) -> tuple[bytes, str]:
    return hashlib.blake2b(f"{worker}\0{stream_id}".encode(), digest_size=8).digest(), worker


def owner(stream_id: str, workers: Collection[str]) -> str | None:
    """The worker that ranks first for a stream: the highest hash of (worker, stream) (rendezvous hashing)."""
    return max(workers, key=lambda w: _rank(stream_id, w), default=None)


def assign(stream_ids: Sequence[str], capacity: Mapping[str, int]) -> dict[str, str | None]:
    """Which worker runs each stream (None: no worker has a free slot). `stream_ids` oldest first: each in turn
    goes to the highest-ranked worker with a slot left, so an older stream is never displaced by a newer one."""
    load = dict.fromkeys(capacity, 0)
    owners: dict[str, str | None] = {}
    for stream_id in stream_ids:
        ranked = sorted(capacity, key=lambda w: _rank(stream_id, w), reverse=True)
        chosen = next((w for w in ranked if load[w] < capacity[w]), None)
        if chosen is not None:
            load[chosen] += 1
        owners[stream_id] = chosen
    return owners


def bucket(settings: Settings, role: Role) -> str:
    """The heartbeat bucket of a role's members: FACEGATE_STREAMS__WORKERS_BUCKET, suffixed for a split role."""
    base = settings.streams.workers_bucket
    return base if role == "all" else f"{base}_{role}"


def _capacity(value: bytes | None) -> int:
    try:
        body: Any = json.loads(value or b"null")
        capacity = body.get("max_streams") if isinstance(body, dict) else None
    except ValueError:
        return UNBOUNDED
    return capacity if isinstance(capacity, int) and capacity >= 1 else UNBOUNDED


def nats_url(settings: Settings) -> str:
    if settings.streams.nats_url:
        return settings.streams.nats_url
    if settings.events.type == "nats" and settings.events.url:
        return settings.events.url
    return DEFAULT_URL


class WorkerGroup:
    """This worker's view of the live workers, kept current by `run`; `owns` is what the StreamManager asks."""

    def __init__(self, settings: Settings, worker_id: str, *, role: Role = "all") -> None:
        self.id = worker_id
        self.role = role
        self.capacity = settings.streams.max_streams
        self.url = nats_url(settings)
        self.bucket = bucket(settings, role)
        self.ttl = settings.streams.worker_ttl_seconds
        self.interval = self.ttl / 3
        self._lock = threading.Lock()
        self._members: dict[str, int] = {}  # id -> capacity; empty until the first beat and listing succeed
        self._beat_at = 0.0  # time.monotonic() of the last successful beat
        self._revision: int | None = None  # of this worker's key, as it last wrote it

    def share(self, stream_ids: Sequence[str]) -> Share:
        """This worker's part of the streams (ids oldest first), and the unplaced ones it ranks first for."""
        with self._lock:
            members = self._members
        if self.id not in members:
            return Share(frozenset())
        owners = assign(stream_ids, members)
        return Share(
            run=frozenset(s for s, w in owners.items() if w == self.id),
            waiting=frozenset(s for s, w in owners.items() if w is None and owner(s, members) == self.id),
        )

    def members(self) -> dict[str, int]:
        """The live members of this worker's role, and the capacity each announced."""
        with self._lock:
            return self._members

    def _set_members(self, members: dict[str, int], on_change: Callable[[], None]) -> None:
        with self._lock:
            changed = members != self._members
            self._members = members
        if changed:
            listed = ", ".join(f"{w} ({n if n < UNBOUNDED else 'no limit'})" for w, n in sorted(members.items()))
            log.info("%s workers: %s", self.role, listed or "(none: this worker runs nothing)")
            on_change()

    async def run(self, stop: asyncio.Event, on_change: Callable[[], None]) -> None:
        """Beat and list until `stop`; reconnects while NATS is unreachable (running nothing meanwhile, once
        this worker's last beat is older than the TTL)."""
        nc: Client | None = None
        kv: KeyValue | None = None
        try:
            while not stop.is_set():
                try:
                    if nc is None or nc.is_closed:
                        kv = None
                        nc = await nats.connect(self.url, connect_timeout=self.interval, max_reconnect_attempts=-1)
                    if kv is None:
                        kv = await self._bucket(nc)
                    await self._beat(kv, on_change)
                except Exception as exc:  # NATS down or slow: keep trying; fence ourselves once the TTL passes
                    log.warning("workers: NATS at %s: %r", self.url, exc)
                    if time.monotonic() - self._beat_at > self.ttl:
                        self._set_members({}, on_change)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            self._set_members({}, on_change)
            if nc is not None and not nc.is_closed:
                if kv is not None and self._revision is not None:
                    with contextlib.suppress(Exception):
                        # Leaving: the others take this worker's streams at their next listing, not after the TTL.
                        await asyncio.wait_for(kv.delete(self.id, last=self._revision), self.interval)
                with contextlib.suppress(Exception):
                    await nc.close()

    async def _bucket(self, nc: Client) -> KeyValue:
        js = nc.jetstream(timeout=self.interval)
        try:
            return await js.key_value(self.bucket)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=self.bucket, ttl=self.ttl, history=1)

    async def _beat(self, kv: KeyValue, on_change: Callable[[], None]) -> None:
        body = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "role": self.role, "max_streams": self.capacity}
        ).encode()
        try:
            # Create the key, then update it only from the revision this worker wrote last: a second live
            # worker with the same id (a fixed --id started twice, or a restart before the old key expired)
            # cannot beat for this one, and runs nothing until the key is free.
            if self._revision is None:
                self._revision = await asyncio.wait_for(kv.create(self.id, body), self.interval)
            else:
                self._revision = await asyncio.wait_for(kv.update(self.id, body, last=self._revision), self.interval)
        except KeyWrongLastSequenceError:
            self._revision = None
            log.warning("workers: another live worker has the id %s; waiting for its key to expire", self.id)
            self._set_members({}, on_change)
            return
        self._beat_at = time.monotonic()
        try:
            keys = await asyncio.wait_for(kv.keys(), self.interval)
        except NoKeysError:
            keys = []
        members = {self.id: self.capacity}
        for key in keys:
            if key != self.id:
                try:
                    entry = await asyncio.wait_for(kv.get(key), self.interval)
                except KeyNotFoundError:  # expired or deleted since the listing
                    continue
                members[key] = _capacity(entry.value)
        self._set_members(members, on_change)


def _relayed(rt: Runtime, relay: FrameRelay) -> RunnerFactory:
    silence = max(5.0, 3 * rt.settings.streams.status_seconds)

    def start(row: StreamRow, options: StreamOptions) -> StreamRunner:
        video = RelayedSource(relay, row.id, queue_size=options.queue_size, silence_seconds=silence)
        pipeline = Pipeline(rt, stream_id=row.id, name=row.name, source=row.source, options=options, video=video)
        return RelayedPipeline(pipeline, video)

    return start


def _publishers(relay: FrameRelay, worker: str) -> RunnerFactory:
    def start(row: StreamRow, options: StreamOptions) -> StreamRunner:
        return FramePublisher(relay, stream_id=row.id, name=row.name, source=row.source, options=options, worker=worker)

    return start


def _check_prefixes(settings: Settings) -> None:
    """Frames must not land in the events' JetStream stream (`<events prefix>.>`, kept for days) nor reach the
    servers' events relay."""
    frames, events = settings.streams.frames_prefix, settings.events.prefix
    if settings.events.type == "nats" and f"{frames}.frames.".startswith(f"{events}."):
        raise ConfigurationError(
            [
                f"FACEGATE_STREAMS__FRAMES_PREFIX {frames!r} puts frames under the events' prefix {events!r}: "
                "choose prefixes that do not contain each other."
            ]
        )


def _start(settings: Settings, group: WorkerGroup) -> tuple[StoreRuntime, FrameRelay | None, StreamManager]:
    """Open what the worker's role needs and build its stream manager (not started)."""
    role = group.role
    if role != "all":
        _check_prefixes(settings)
    # An ingest worker needs the store (which streams exist) and NATS, no engine: it loads no model.
    rt = StoreRuntime(settings) if role == "ingest" else Runtime(settings)
    relay = FrameRelay(group.url, settings.streams.frames_prefix) if role != "all" else None
    try:
        if role == "ingest":
            rt.open_store()
        else:
            rt.open()
        if relay is not None:
            relay.open()
    except BaseException:
        rt.close()
        raise
    if relay is None:
        assert isinstance(rt, Runtime)
        return rt, None, StreamManager(rt, worker=group.id, runner=pipelines(rt), share=group.share)
    if isinstance(rt, Runtime):
        return rt, relay, StreamManager(rt, worker=group.id, runner=_relayed(rt, relay), share=group.share)
    # Its status goes to the recognize worker of each stream, in the messages' headers: one process (the one
    # that also knows the tracks) writes each stream's row.
    manager = StreamManager(
        rt, worker=group.id, runner=_publishers(relay, group.id), share=group.share, report=relay.report
    )
    return rt, relay, manager


def run_worker(settings: Settings, worker_id: str | None = None, role: Role = "all") -> None:
    """Run streams (or one half of each: `role`) as one of the deployment's workers until SIGTERM or Ctrl-C."""
    group = WorkerGroup(settings, worker_id or default_worker_id(), role=role)
    rt, relay, manager = _start(settings, group)
    log.info(
        "worker %s (%s, up to %d streams): sharing streams through %s (bucket %s)",
        group.id,
        role,
        group.capacity,
        group.url,
        group.bucket,
    )
    manager.start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await group.run(stop, manager.wake)

    try:
        asyncio.run(main())
    finally:
        manager.close()
        if relay is not None:
            relay.close()
        rt.close()
