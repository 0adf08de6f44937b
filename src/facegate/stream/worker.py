"""`facegate worker`: processes that share the deployment's streams through NATS, and take over a dead one's.

Membership: each worker puts its id into a JetStream key-value bucket every `worker_ttl_seconds / 3`; the bucket
keeps a value `worker_ttl_seconds` (its max age), so a worker that stops beating (killed, hung, cut off) drops out
of `keys()` that long after its last beat. Every worker lists the bucket as often as it beats.

Ownership: rendezvous hashing of each stream id over the live workers' ids: each worker computes the same owner
from the same member list, with no messages between them, and a change of membership moves only the streams
of the worker that joined or left. Streams themselves are rows in the shared store (SQLite file or PostgreSQL),
which every worker's StreamManager reads every `poll_seconds`.

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
from collections.abc import Callable, Collection

import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from facegate.config import Settings
from facegate.services.runtime import Runtime
from facegate.stream.manager import StreamManager, default_worker_id

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"


def owner(stream_id: str, workers: Collection[str]) -> str | None:
    """The worker that runs a stream: the highest hash of (worker, stream) wins (rendezvous hashing)."""

    def score(worker: str) -> bytes:
        return hashlib.blake2b(f"{worker}\0{stream_id}".encode(), digest_size=8).digest()

    return max(workers, key=lambda w: (score(w), w), default=None)


def nats_url(settings: Settings) -> str:
    if settings.streams.nats_url:
        return settings.streams.nats_url
    if settings.events.type == "nats" and settings.events.url:
        return settings.events.url
    return DEFAULT_URL


class WorkerGroup:
    """This worker's view of the live workers, kept current by `run`; `owns` is what the StreamManager asks."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.id = worker_id
        self.url = nats_url(settings)
        self.bucket = settings.streams.workers_bucket
        self.ttl = settings.streams.worker_ttl_seconds
        self.interval = self.ttl / 3
        self._lock = threading.Lock()
        self._members: frozenset[str] = frozenset()  # empty until the first beat and listing succeed
        self._beat_at = 0.0  # time.monotonic() of the last successful beat
        self._revision: int | None = None  # of this worker's key, as it last wrote it

    def owns(self, stream_id: str) -> bool:
        with self._lock:
            members = self._members
        return owner(stream_id, members) == self.id

    def members(self) -> frozenset[str]:
        with self._lock:
            return self._members

    def _set_members(self, members: frozenset[str], on_change: Callable[[], None]) -> None:
        with self._lock:
            changed = members != self._members
            self._members = members
        if changed:
            log.info("workers: %s", ", ".join(sorted(members)) or "(none: this worker runs nothing)")
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
                        self._set_members(frozenset(), on_change)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            self._set_members(frozenset(), on_change)
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
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
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
            self._set_members(frozenset(), on_change)
            return
        self._beat_at = time.monotonic()
        try:
            keys = await asyncio.wait_for(kv.keys(), self.interval)
        except NoKeysError:
            keys = []
        self._set_members(frozenset([*keys, self.id]), on_change)


def run_worker(settings: Settings, worker_id: str | None = None) -> None:
    """Run streams as one of the deployment's workers until SIGTERM or Ctrl-C."""
    rt = Runtime(settings)
    try:
        rt.open()
    except BaseException:
        rt.close()
        raise
    group = WorkerGroup(settings, worker_id or default_worker_id())
    manager = StreamManager(rt, worker=group.id, owns=group.owns)
    log.info("worker %s: sharing streams through %s (bucket %s)", group.id, group.url, group.bucket)
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
        rt.close()
