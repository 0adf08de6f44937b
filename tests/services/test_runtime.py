"""services.runtime: the index is loaded from the store and follows its change log; pending blobs are settled."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import select

from facegate.config import HNSWIndexSettings, Settings
from facegate.services import identify as identify_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.store.base import NewFace
from facegate.store.models import FaceRecord
from facegate.vision.pool import EnginePool
from tests.support import blob_files, enroll_photos, pending_blob_count, sql


def _embedding(rt: Runtime, face_id: int) -> np.ndarray:
    info = rt.engine.info
    [e] = rt.store.iter_embeddings(info.name, info.model_version, ids=[face_id])
    return np.frombuffer(e.vector, dtype=np.float32)


def _faces(rt: Runtime) -> dict[int, str]:
    with sql(rt).db.session() as session:
        return {f.id: f.person_id for f in session.scalars(select(FaceRecord))}


def test_index_is_rebuilt_from_the_store_at_start(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path
) -> None:
    powell = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
    bush = enroll_photos(runtime, "George W. Bush", dev / "george_w_bush" / "1.jpg")
    faces = _faces(runtime)
    runtime.close()

    restarted = Runtime(settings, engine=opencv_pool)
    restarted.open()
    try:
        assert len(restarted.index) == 3
        for face_id, person_id in faces.items():
            [nearest] = restarted.index.search(_embedding(restarted, face_id), 1)
            assert (nearest.face_id, nearest.person_id) == (face_id, person_id)
            assert nearest.distance < 1e-4
        assert {powell, bush} == set(faces.values())
    finally:
        restarted.close()


def _other_engine_face(rt: Runtime, image_id: str) -> None:
    rt.store.add_faces(
        [
            (
                image_id,
                NewFace(
                    left=0,
                    top=0,
                    width=10,
                    height=10,
                    quality=1.0,
                    detector_score=1.0,
                    sharpness=1.0,
                    engine="other-engine",
                    model_version="v0",
                    embedding=np.ones(128, dtype="<f4").tobytes(),
                ),
            )
        ]
    )


def test_load_takes_only_embeddings_of_the_current_engine(runtime: Runtime, dev: Path) -> None:
    person = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    [face] = runtime.store.list_faces(person)
    _other_engine_face(runtime, face.image_id)

    runtime.sync_index()  # the other engine's add is in the change log, and ignored
    assert len(runtime.index) == 1
    runtime.load_index()
    assert len(runtime.index) == 1


def test_load_of_an_empty_store(runtime: Runtime) -> None:
    runtime.load_index()
    assert len(runtime.index) == 0
    assert runtime.index.ready()


def test_settle_removes_unreferenced_pending_blobs_and_keeps_referenced_and_young_ones(
    runtime: Runtime, dev: Path
) -> None:
    enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    [enrolled] = blob_files(runtime)
    enrolled_key = enrolled.relative_to(runtime.settings.blob_path).as_posix()
    # A crash between the pending record and the rows: the blob is written, nothing points at it.
    runtime.put_blobs([("images/xx/crashed.jpg", b"left by a crash")])
    # A pending record for a blob a row does point at (e.g. a crash right after the commit's own clear failed).
    runtime.store.begin_blob_writes([enrolled_key])

    assert runtime.settle_pending_blobs(grace_seconds=3600) == 0  # too young: may be a request in flight
    assert pending_blob_count(runtime) == 2
    assert runtime.settle_pending_blobs(grace_seconds=0) == 1

    assert blob_files(runtime) == [enrolled]
    assert pending_blob_count(runtime) == 0


def test_unreferenced_blobs_outside_the_pending_list_are_never_touched(runtime: Runtime) -> None:
    """The sweep reads the pending list only (no listing of the bucket or table): a blob written by hand stays."""
    runtime.blobs.put("elsewhere/kept.bin", b"not ours to judge")
    assert runtime.settle_pending_blobs(grace_seconds=0) == 0
    assert runtime.blobs.exists("elsewhere/kept.bin")


def test_settle_runs_at_start(settings: Settings, opencv_pool: EnginePool, runtime: Runtime) -> None:
    runtime.put_blobs([("crops/2020/01/01/crashed-0.jpg", b"left by a crash")])
    runtime.close()

    restarted = Runtime(
        settings.model_copy(
            update={"retention": settings.retention.model_copy(update={"pending_blob_grace_seconds": 0})}
        ),
        engine=opencv_pool,
    )
    restarted.open()
    try:
        assert not restarted.blobs.exists("crops/2020/01/01/crashed-0.jpg")
        assert pending_blob_count(restarted) == 0
    finally:
        restarted.close()


def test_readiness_names_every_part(runtime: Runtime) -> None:
    status = runtime.readiness()
    assert status.ok
    assert status.parts == {"store": True, "blobs": True, "engine": True, "index": True}


def test_closing_a_runtime_leaves_a_shared_engine_pool_running(settings: Settings, opencv_pool: EnginePool) -> None:
    rt = Runtime(settings, engine=opencv_pool)
    rt.open()
    rt.close()
    assert opencv_pool.ready()


def test_open_creates_the_data_directory(tmp_path: Path, opencv_pool: EnginePool) -> None:
    data = tmp_path / "nested" / "data"
    rt = Runtime(Settings(data_dir=data), engine=opencv_pool)
    assert not data.exists()  # the constructor does no I/O
    rt.open()
    try:
        assert (data / "facegate.db").is_file()
        assert (data / "blobs").is_dir()
    finally:
        rt.close()


def test_index_follows_enrollments_and_deletes_made_by_another_process(
    settings: Settings, opencv_pool: EnginePool, dev: Path
) -> None:
    """Two runtimes on one data directory stand for `facegate serve` and a `facegate enroll` run beside it."""
    server = Runtime(settings.model_copy(update={"index": HNSWIndexSettings(sync_seconds=0.001)}), engine=opencv_pool)
    server.open()
    other = Runtime(settings, engine=opencv_pool)
    other.open()
    probe = (dev / "colin_powell" / "3.jpg").read_bytes()
    try:
        assert identify_service.identify(server, probe).faces[0].match is None
        powell = enroll_photos(other, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
        time.sleep(0.01)

        seen = identify_service.identify(server, probe).faces[0].match
        assert seen is not None and seen.person_id == powell
        assert len(server.index) == 2

        people_service.delete_person(other, powell)
        time.sleep(0.01)
        assert identify_service.identify(server, probe).faces[0].match is None
        assert len(server.index) == 0
    finally:
        other.close()
        server.close()


def test_sync_is_a_no_op_when_nothing_changed(runtime: Runtime, dev: Path) -> None:
    enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    runtime.sync_index()
    assert len(runtime.index) == 1
    runtime.sync_index()
    assert len(runtime.index) == 1


def test_a_trimmed_change_log_makes_a_lagging_replica_reload(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path
) -> None:
    lagging = Runtime(settings, engine=opencv_pool)
    lagging.open()
    try:
        enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
        enroll_photos(runtime, "George W. Bush", dev / "george_w_bush" / "1.jpg")
        assert runtime.store.trim_changes(datetime.now(UTC) + timedelta(days=1)) >= 1
        assert runtime.store.changes_since(0) is None

        lagging.sync_index()

        assert len(lagging.index) == 2
    finally:
        lagging.close()


class _NoFullLoad:
    """Wraps a store so that a test can tell a snapshot load from a full rebuild (which reads every embedding)."""

    def __init__(self, rt: Runtime) -> None:
        self.full_loads = 0
        real = rt.store.iter_embeddings

        def counting(engine: str, model_version: str, *, ids: object = None) -> object:
            if ids is None:
                self.full_loads += 1
            return real(engine, model_version, ids=ids)  # type: ignore[arg-type]

        rt.store.iter_embeddings = counting  # type: ignore[method-assign,assignment]


def test_restart_loads_the_index_snapshot_and_applies_changes_made_meanwhile(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path
) -> None:
    powell = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
    runtime.close()  # saves the snapshot
    # While the service is down, another process enrolls someone and deletes someone.
    other = Runtime(settings.model_copy(update={"index": HNSWIndexSettings(snapshot=False)}), engine=opencv_pool)
    other.open()
    bush = enroll_photos(other, "George W. Bush", dev / "george_w_bush" / "1.jpg")
    people_service.delete_person(other, powell)
    other.close()

    restarted = Runtime(settings, engine=opencv_pool)
    counter = _NoFullLoad(restarted)
    restarted.open()
    try:
        assert counter.full_loads == 0  # from the snapshot, not rebuilt
        assert len(restarted.index) == 1
        [face] = restarted.store.list_faces(bush)
        [hit] = restarted.index.search(_embedding(restarted, face.id), 1)
        assert hit.person_id == bush
    finally:
        restarted.close()


def test_a_snapshot_of_another_store_is_not_used(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path, tmp_path: Path
) -> None:
    enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    runtime.close()
    # Same data directory (so the same snapshot files), a different, empty database.
    fresh = settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": f"sqlite:///{tmp_path / 'other.db'}"})}
    )
    other = Runtime(fresh, engine=opencv_pool)
    counter = _NoFullLoad(other)
    other.open()
    try:
        assert counter.full_loads == 1
        assert len(other.index) == 0
    finally:
        other.close()


def test_a_damaged_snapshot_is_rebuilt_from_the_store(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path
) -> None:
    enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    runtime.close()
    for graph in (settings.data_dir / "index").glob("*/index.graph"):
        graph.write_bytes(b"not a graph")
    restarted = Runtime(settings, engine=opencv_pool)
    counter = _NoFullLoad(restarted)
    restarted.open()
    try:
        assert counter.full_loads == 1
        assert len(restarted.index) == 1
    finally:
        restarted.close()
