"""Everything a request needs, built from Settings and opened once: store, blobs, engine pool, index."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from facegate.config import Settings
from facegate.index.base import VectorIndex
from facegate.index.factory import build_index
from facegate.services.telemetry import Telemetry
from facegate.store import repository
from facegate.store.blobs import BlobStore
from facegate.store.database import Database
from facegate.store.factory import build_blob_store
from facegate.vision.pool import EnginePool

log = logging.getLogger(__name__)

REBUILD_BATCH = 5000
# Blobs younger than this may belong to an enrollment still in flight; the sweep leaves them alone.
ORPHAN_MIN_AGE_SECONDS = 3600.0


@dataclass
class Readiness:
    ok: bool
    parts: dict[str, bool]


class Runtime:
    def __init__(self, settings: Settings, engine: EnginePool | None = None) -> None:
        """`engine`: an already opened pool to share (its owner closes it); by default one is built."""
        self.settings = settings
        self.db = Database(settings.database_url, echo=settings.database.echo)
        self.blobs: BlobStore = build_blob_store(settings)
        self._owns_engine = engine is None
        self.engine = engine or EnginePool(settings.engine, settings.worker_count)
        info = self.engine.info
        self.index: VectorIndex = build_index(settings.index, dim=info.dim, metric=info.metric)
        self.telemetry = Telemetry()
        # Held while index entries and their rows must change together (enroll, reindex, sync).
        self.index_writes = threading.RLock()
        self._synced_at = 0.0

    def open(self) -> None:
        started = time.perf_counter()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db.open()
        self.blobs.open()
        if self._owns_engine:
            self.engine.open()
        self.rebuild_index()
        swept = self.sweep_orphan_blobs()
        if swept:
            log.warning("removed %d orphan blobs left by interrupted operations", swept)
        log.info(
            "facegate ready in %.1fs: engine=%s workers=%d faces=%d",
            time.perf_counter() - started,
            self.engine.info.name,
            self.engine.workers,
            len(self.index),
        )

    def rebuild_index(self) -> None:
        """Load every embedding of the current engine and model version from the store."""
        with self.index_writes:
            self.index.open()
            self._load_embeddings(None)
            self._synced_at = time.monotonic()

    def _load_embeddings(self, ids: set[int] | None) -> None:
        info = self.engine.info
        face_ids: list[int] = []
        people: list[str] = []
        vectors: list[bytes] = []

        def flush() -> None:
            matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(face_ids), info.dim)
            self.index.add(face_ids, people, matrix)
            face_ids.clear()
            people.clear()
            vectors.clear()

        # Chunks keep an IN (...) list within every database's limit on bound parameters.
        chunks: list[set[int] | None] = (
            [None]
            if ids is None
            else [set(sorted(ids)[i : i + REBUILD_BATCH]) for i in range(0, len(ids), REBUILD_BATCH)]
        )
        with self.db.session() as session:
            for chunk in chunks:
                for face_id, person_id, embedding in repository.iter_embeddings(
                    session, info.name, info.model_version, ids=chunk
                ):
                    face_ids.append(face_id)
                    people.append(person_id)
                    vectors.append(embedding)
                    if len(face_ids) >= REBUILD_BATCH:
                        flush()
        if face_ids:
            flush()
        self.telemetry.index_size.set(len(self.index))

    def sync_index(self) -> None:
        """Bring the index level with the store after other processes enrolled or deleted faces.

        Cheap when nothing changed (one COUNT/MAX query); otherwise the id sets are compared and only the
        difference is loaded or removed. Holds `index_writes`, so an enrollment of this process that has
        reached the index but not yet committed is never mistaken for a stale entry.
        """
        info = self.engine.info
        with self.index_writes:
            self._synced_at = time.monotonic()
            with self.db.session() as session:
                count, highest = repository.embedding_stats(session, info.name, info.model_version)
                if count == len(self.index) and highest == self.index.max_id():
                    return
                stored = repository.face_ids(session, info.name, info.model_version)
            indexed = self.index.ids()
            self.index.remove(sorted(indexed - stored))
            self._load_embeddings(stored - indexed)
        log.info("index synced with the store: %d faces", len(self.index))

    def sync_index_if_due(self) -> None:
        interval = self.settings.index.sync_seconds
        if interval and time.monotonic() - self._synced_at >= interval:
            self.sync_index()

    def sweep_orphan_blobs(self, min_age_seconds: float = ORPHAN_MIN_AGE_SECONDS) -> int:
        """Delete blobs no row refers to (left by a crash between a blob write and its commit)."""
        with self.db.session() as session:
            referenced = repository.all_blob_keys(session)
        removed = 0
        cutoff = time.time() - min_age_seconds
        for key in list(self.blobs.keys()):
            if key not in referenced and self.blobs.modified_at(key) < cutoff:
                self.blobs.delete(key)
                removed += 1
        return removed

    def readiness(self) -> Readiness:
        parts = {
            "store": self.db.ping(),
            "blobs": self.blobs.ready(),
            "engine": self.engine.ready(),
            "index": self.index.ready(),
        }
        return Readiness(all(parts.values()), parts)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.close()
        self.db.close()
