"""Match history for the benches that search it (bench/retro_search.py, bench/search_history.py): a runtime on a
fresh store with the default engine, history rows for given descriptors, as identify writes them for faces nobody
matched (no crops), and people enrolled with given descriptors. Imported with PYTHONPATH=bench."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facegate.config import OpenCVEngineSettings, Settings
from facegate.services.runtime import Runtime
from facegate.store.base import NewFace, NewImage, NewMatch, PersonCreate
from facegate.vision.engine import EngineInfo
from facegate.vision.pool import EnginePool


@contextlib.contextmanager
def bench_runtime(database_url: str | None = None) -> Iterator[Runtime]:
    """An opened runtime (opencv engine, one worker) on a fresh temporary data directory: its SQLite store, or
    the (empty) database at `database_url`."""
    pool = EnginePool(OpenCVEngineSettings(), workers=1)
    pool.open()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            database = {"url": database_url, "auto_migrate": True} if database_url else {}
            rt = Runtime(Settings(data_dir=Path(data_dir), workers=1, database=database), engine=pool)
            rt.open()
            try:
                yield rt
            finally:
                rt.close()
    finally:
        pool.close()


def unknown_matches(info: EngineInfo, vectors: npt.NDArray[np.floating]) -> list[NewMatch]:
    """One history row per descriptor: an unknown face of its own request."""
    now = datetime.now(UTC)
    return [
        NewMatch(
            request_id=str(uuid.uuid4()),
            source="bench",
            created_at=now,
            person_id=None,
            distance=None,
            confidence=None,
            threshold=info.threshold,
            left=0,
            top=0,
            width=100,
            height=100,
            quality=1.0,
            engine=info.name,
            model_version=info.model_version,
            candidates=[],
            crop_key=None,
            embedding=np.asarray(v, dtype="<f4").tobytes(),
        )
        for v in vectors
    ]


def enroll(rt: Runtime, name: str, vectors: npt.NDArray[np.floating]) -> str:
    """A person enrolled with these descriptors (one photo each, no blobs), through the store's own interface."""
    info = rt.engine.info
    images = [
        NewImage(
            id=str(uuid.uuid4()),
            blob_key=f"bench/{uuid.uuid4()}.jpg",
            sha256=uuid.uuid4().hex,
            filename=None,
            width=250,
            height=250,
            faces=[NewFace(0, 0, 100, 100, 1.0, 1.0, 100.0, info.name, info.model_version, v.astype("<f4").tobytes())],
        )
        for v in vectors
    ]
    person, _ = rt.store.save_enrollment(PersonCreate(name=name), images)
    return person.id
