"""services.runtime: the index is rebuilt from the store at start; orphan blobs are swept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from facegate.config import HNSWIndexSettings, Settings
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.models import FaceRecord, ImageRecord, Person, new_id
from facegate.vision.pool import EnginePool
from tests.support import blob_files


def _enroll(rt: Runtime, name: str, *paths: Path) -> str:
    uploads = [Upload(filename=p.name, data=p.read_bytes()) for p in paths]
    return enroll_service.enroll(rt, uploads, name=name).person.id


def _embedding(rt: Runtime, face_id: int) -> np.ndarray:
    with rt.db.session() as session:
        return np.frombuffer(session.get_one(FaceRecord, face_id).embedding, dtype=np.float32)


def test_index_is_rebuilt_from_the_store_at_start(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path
) -> None:
    powell = _enroll(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
    bush = _enroll(runtime, "George W. Bush", dev / "george_w_bush" / "1.jpg")
    with runtime.db.session() as session:
        faces = {f.id: f.person_id for f in session.scalars(select(FaceRecord))}
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


def test_rebuild_loads_only_embeddings_of_the_current_engine(runtime: Runtime, dev: Path) -> None:
    _enroll(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    with runtime.db.session() as session:
        person = session.scalars(select(Person)).one()
        image = session.scalars(select(ImageRecord)).one()
        session.add(
            FaceRecord(
                person_id=person.id,
                image_id=image.id,
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
            )
        )

    runtime.rebuild_index()

    assert len(runtime.index) == 1


def test_rebuild_of_an_empty_store(runtime: Runtime) -> None:
    runtime.rebuild_index()
    assert len(runtime.index) == 0
    assert runtime.index.ready()


def _orphan(rt: Runtime, key: str, *, age_seconds: float) -> Path:
    rt.blobs.put(key, b"left by a crash")
    path = rt.settings.blob_path / key
    old = path.stat().st_mtime - age_seconds
    os.utime(path, (old, old))
    return path


def test_sweep_removes_old_orphans_and_keeps_referenced_and_young_blobs(runtime: Runtime, dev: Path) -> None:
    _enroll(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    [enrolled] = blob_files(runtime)
    os.utime(enrolled, (0, 0))  # referenced blobs are kept however old
    old = _orphan(runtime, f"images/{new_id()}/{new_id()}.jpg", age_seconds=2 * 3600)
    young = _orphan(runtime, f"images/{new_id()}/{new_id()}.jpg", age_seconds=60)

    assert runtime.sweep_orphan_blobs() == 1

    assert not old.exists()
    assert young.exists() and enrolled.exists()
    assert runtime.sweep_orphan_blobs(min_age_seconds=0) == 1
    assert blob_files(runtime) == [enrolled]


def test_sweep_runs_at_start(settings: Settings, opencv_pool: EnginePool, runtime: Runtime) -> None:
    orphan = _orphan(runtime, "crops/2020/01/01/crashed-0.jpg", age_seconds=10 * 3600)
    runtime.close()

    restarted = Runtime(settings, engine=opencv_pool)
    restarted.open()
    try:
        assert not orphan.exists()
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
        powell = _enroll(other, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
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
    _enroll(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    before = runtime.index.ids()
    runtime.sync_index()
    assert runtime.index.ids() == before and len(before) == 1
