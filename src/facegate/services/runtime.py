"""Everything a request needs, built from Settings and opened once: store, blobs, engine pool, index.

`StoreRuntime` is the part without the engine and the index, for commands that manage people, keys and history
(`facegate people ...`, `facegate keys ...`): it starts no engine worker, builds no index and sweeps no blobs.

Also the two disciplines every service shares: blobs are written before the rows that point at them and
deleted after those rows are gone (the store records the in-between state, so a crash is settled later),
and an in-process index follows the store's change log (so it sees what other processes and replicas do).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from facegate.config import Settings
from facegate.events.bus import EventBus
from facegate.events.factory import build_event_bus
from facegate.index.base import VectorIndex
from facegate.index.factory import build_index
from facegate.services.telemetry import Telemetry
from facegate.store.base import Repository
from facegate.store.blobs import BlobStore
from facegate.store.factory import build_blob_store, build_repository
from facegate.vision.pool import EnginePool

log = logging.getLogger(__name__)

LOAD_BATCH = 5000


@dataclass
class Readiness:
    ok: bool
    parts: dict[str, bool]


class StoreRuntime:
    """The store and the blob store, and the blob discipline. What services that only read or change rows and
    blobs need; a server's `Runtime` is one too. Changes to faces reach every process's index through the store's
    change log, which the store writes in the same transaction as the rows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Repository = build_repository(settings)
        self.blobs: BlobStore = build_blob_store(settings)
        # When this process last recorded each key's use (monotonic seconds): uses are written throttled.
        self.key_touches: dict[str, float] = {}

    def open_store(self) -> None:
        """The store alone: for commands that never read or delete a blob (keys, listings), so that they do not
        depend on the blob store being reachable."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store.open()

    def open(self) -> None:
        self.open_store()
        self.blobs.open()

    def sync_index_after_write(self) -> None:
        """After this process committed a change: nothing to do without an in-process index. The change is in
        the store's change log, which every running server's index follows (`Runtime.sync_index`)."""

    # Blobs ---------------------------------------------------------------------------------------------------
    def put_blobs(self, items: list[tuple[str, bytes]], *, durable: bool = True) -> None:
        """Write blobs that rows about to be stored will point at. Recorded as pending first, so a crash at
        any point leaves nothing the sweep cannot settle; on failure the blobs written so far are removed.
        `durable`: see `BlobStore.put`."""
        keys = [key for key, _ in items]
        self.store.begin_blob_writes(keys)
        written: list[str] = []
        try:
            for key, data in items:
                self.blobs.put(key, data, durable=durable)
                written.append(key)
        except BaseException:
            self.discard_blobs(keys)
            raise

    def discard_blobs(self, keys: list[str]) -> None:
        """Delete blobs no row points at any more (after a failed write, or rows deleted). A blob that cannot
        be deleted now stays pending and is retried by the sweep."""
        deleted: list[str] = []
        for key in keys:
            try:
                self.blobs.delete(key)
                deleted.append(key)
            except Exception:
                log.exception("could not delete blob %s; the sweep will retry", key)
        try:
            self.store.forget_pending_blobs(deleted)
        except Exception:
            log.exception("could not clear %d pending blobs; the sweep will settle them", len(deleted))

    def settle_pending_blobs(self, grace_seconds: float) -> int:
        """Settle blobs left pending by interrupted operations for longer than `grace_seconds`: delete those no
        row points at, forget the rest. Reads only the pending list, never the whole bucket or table."""
        cutoff = datetime.now(UTC) - timedelta(seconds=grace_seconds)
        settled = 0
        while True:
            keys = self.store.pending_blobs(cutoff)
            if not keys:
                return settled
            referenced = self.store.referenced_blobs(keys)
            done: list[str] = []
            for key in keys:
                if key not in referenced:
                    try:
                        self.blobs.delete(key)
                    except Exception:
                        log.exception("could not delete orphan blob %s; will retry", key)
                        continue
                    settled += 1
                done.append(key)
            self.store.forget_pending_blobs(done)
            if len(done) < len(keys):
                return settled

    def close(self) -> None:
        self.store.close()


class Runtime(StoreRuntime):
    """A `StoreRuntime` with the engine pool and the vector index: what enroll, identify and the server need."""

    def __init__(self, settings: Settings, engine: EnginePool | None = None) -> None:
        """`engine`: an already opened pool to share (its owner closes it); by default one is built."""
        super().__init__(settings)
        self._owns_engine = engine is None
        self.engine = engine or EnginePool(settings.engine, settings.worker_count, limits=settings.limits)
        info = self.engine.info
        self.index: VectorIndex = build_index(
            settings.index,
            dim=info.dim,
            metric=info.metric,
            database_url=settings.database_url,
            engine=info.name,
            model_version=info.model_version,
        )
        self.telemetry = Telemetry()
        # Events out: this process's subscribers (SSE) and the configured broker and webhooks.
        self.events: EventBus = build_event_bus(settings.events)
        self.telemetry.watch_events(self.events.stats)
        # Serializes applying the change log, so changes reach the index in sequence order.
        self._sync_lock = threading.Lock()
        self._cursor = 0
        self._synced_at = 0.0

    def open(self) -> None:
        started = time.perf_counter()
        super().open()
        if self._owns_engine:
            self.engine.open()
        self.index.open()
        self.events.open()
        if self.index.stateful:
            self.load_index()
        settled = self.settle_pending_blobs(self.settings.retention.pending_blob_grace_seconds)
        if settled:
            log.warning("settled %d blobs left pending by interrupted operations", settled)
        log.info(
            "facegate ready in %.1fs: engine=%s workers=%d index=%s faces=%d",
            time.perf_counter() - started,
            self.engine.info.label,
            self.engine.workers,
            self.settings.index.type,
            len(self.index),
        )

    # Index ---------------------------------------------------------------------------------------------------
    def _snapshot_path(self) -> Path:
        info = self.engine.info
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{info.name}-{info.model_version}")
        return self.settings.data_dir / "index" / name

    def _snapshot_identity(self) -> dict[str, Any]:
        """What a snapshot must match to be used: this store, this engine and model, this index's shape."""
        info = self.engine.info
        index = self.settings.index
        return {
            "store_id": self.store.store_id(),
            "engine": info.name,
            "model_version": info.model_version,
            "dim": info.dim,
            "metric": info.metric,
            "index": index.model_dump(include={"type", "m", "ef_construction"}),
        }

    def _load_snapshot(self) -> bool:
        """Load the index saved at the last shutdown (or full build) and the change-log position it matches;
        False when there is none, it belongs elsewhere, or the log no longer reaches back to it."""
        meta_path = self._snapshot_path().with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return False
        if meta.get("identity") != self._snapshot_identity() or not isinstance(meta.get("cursor"), int):
            log.info("index snapshot %s is for another store, engine or index shape; rebuilding", meta_path)
            return False
        cursor = meta["cursor"]
        if cursor > self.store.last_change() or self.store.changes_since(cursor, limit=1) is None:
            return False
        files = meta_path.parent / str(meta.get("dir", "")) / "index"
        if not meta.get("dir") or not self.index.load(files):
            return False
        self._cursor = cursor
        return True

    def save_index_snapshot(self) -> None:
        """Write the in-process index and the change-log position it reflects (no-op for pgvector)."""
        if not self.index.stateful or not getattr(self.settings.index, "snapshot", False):
            return
        path = self._snapshot_path()
        meta_path = path.with_suffix(".json")
        # Each snapshot in a directory of its own, made current by one atomic rename of the description that
        # names it: a crash, or two processes of one data directory saving at once, never pairs a graph with
        # another graph's change-log position.
        folder = f"{path.name}.{uuid.uuid4().hex[:12]}"
        with self._sync_lock:
            cursor = self._cursor
            self.index.save(path.parent / folder / "index")
        tmp = path.parent / f"{folder}.json.tmp"
        tmp.write_text(json.dumps({"identity": self._snapshot_identity(), "cursor": cursor, "dir": folder}))
        os.replace(tmp, meta_path)
        for old in path.parent.glob(f"{path.name}.*"):
            if old.is_dir() and old.name != folder:
                shutil.rmtree(old, ignore_errors=True)

    def load_index(self) -> None:
        """Load the in-process index: from its snapshot plus the change log since, or else every embedding of
        the current engine and model version from the store (then saved as the next start's snapshot)."""
        started = time.perf_counter()
        if getattr(self.settings.index, "snapshot", False) and self._load_snapshot():
            self.sync_index()
            log.info(
                "index loaded from its snapshot in %.1fs: %d faces", time.perf_counter() - started, len(self.index)
            )
            return
        self._build_index()
        log.info("index built from the store in %.1fs: %d faces", time.perf_counter() - started, len(self.index))
        try:
            self.save_index_snapshot()
        except OSError:
            log.exception("could not save the index snapshot; the next start rebuilds the index")

    def _build_index(self) -> None:
        info = self.engine.info
        with self._sync_lock:
            # The cursor is read first: changes committed while we load are replayed, and replays are no-ops.
            cursor = self.store.last_change()
            self.index.open()
            batch: list[tuple[int, str, bytes]] = []
            for e in self.store.iter_embeddings(info.name, info.model_version):
                batch.append((e.face_id, e.person_id, e.vector))
                if len(batch) >= LOAD_BATCH:
                    self._add(batch)
                    batch = []
            self._add(batch)
            self._cursor = cursor
            self._synced_at = time.monotonic()
        self.telemetry.index_size.set(len(self.index))

    def _add(self, batch: list[tuple[int, str, bytes]]) -> None:
        if batch:
            dim = self.engine.info.dim
            matrix = np.frombuffer(b"".join(v for _, _, v in batch), dtype="<f4").reshape(len(batch), dim)
            self.index.add([f for f, _, _ in batch], [p for _, p, _ in batch], matrix)

    def sync_index(self) -> None:
        """Apply the store's change log since the last sync (faces enrolled or deleted by this process, other
        processes and other replicas alike). A no-op for an index that searches the store itself."""
        if not self.index.stateful:
            return
        info = self.engine.info
        reload = False
        with self._sync_lock:
            self._synced_at = time.monotonic()
            while True:
                changes = self.store.changes_since(self._cursor)
                if changes is None:
                    reload = True
                    break
                if not changes:
                    break
                mine = [c for c in changes if c.engine == info.name and c.model_version == info.model_version]
                added = {c.face_id for c in mine if c.op == "add"}
                # Faces deleted since they were added are simply not found here; their removal follows.
                vectors = {e.face_id: e for e in self.store.iter_embeddings(info.name, info.model_version, ids=added)}
                for change in mine:
                    if change.op == "add" and change.face_id in vectors:
                        e = vectors[change.face_id]
                        self._add([(e.face_id, e.person_id, e.vector)])
                    elif change.op == "remove":
                        self.index.remove([change.face_id])
                self._cursor = changes[-1].seq
        if reload:
            log.warning("the change log was trimmed past this replica's position; rebuilding the index")
            self._build_index()
        self.telemetry.index_size.set(len(self.index))

    def sync_index_if_due(self) -> None:
        interval = getattr(self.settings.index, "sync_seconds", 0.0)
        if interval and time.monotonic() - self._synced_at >= interval:
            self.sync_index()

    def sync_index_after_write(self) -> None:
        """After this process committed a change: bring the index level. A failure here loses nothing (the
        change is in the log; the next sync applies it), so it is logged, not raised."""
        try:
            self.sync_index()
        except Exception:
            log.exception("index sync after a write failed; the next sync will catch up")

    # Health --------------------------------------------------------------------------------------------------
    def readiness(self) -> Readiness:
        parts = {
            "store": self.store.ping(),
            "blobs": self.blobs.ready(),
            "engine": self.engine.ready(),
            "index": self.index.ready(),
        }
        return Readiness(all(parts.values()), parts)

    def close(self) -> None:
        self.events.close()
        if self._owns_engine:
            self.engine.close()
        if self.index.stateful and self.index.ready():
            try:
                self.save_index_snapshot()
            except Exception:
                log.exception("could not save the index snapshot; the next start rebuilds the index")
        self.index.close()
        super().close()
