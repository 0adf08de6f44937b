"""services.auto_enroll: a sure match with a good, different-looking face is added to the person (opt-in),
marked auto, capped, and removable; nothing happens by default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.config import Settings
from facegate.services import auto_enroll
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import IdentifiedFace, Upload
from facegate.store.base import AuditFilter
from facegate.vision.pool import EnginePool
from tests.support import row_counts


def _enroll(rt: Runtime, photo: Path) -> str:
    return enroll_service.enroll(rt, [Upload(photo.name, photo.read_bytes())], name="Person 2").person.id


def _see(rt: Runtime, photo: Path) -> IdentifiedFace:
    return identify_service.identify(rt, photo.read_bytes()).faces[0]


def _auto(rt: Runtime, person: str) -> list[int]:
    return [f.id for f in people_service.list_faces(rt, person) if f.auto]


@pytest.fixture
def person2(dev: Path) -> Path:
    # SFace distances to 1.jpg: 3.jpg 0.38 (a sure match, a different look), 6.jpg 0.24 (too like it); 2.jpg is
    # 0.45 from 1.jpg and 0.44 from 3.jpg.
    return dev / "deepface_person_02"


def test_a_sure_different_looking_match_is_added_once_and_removable(runtime: Runtime, person2: Path) -> None:
    runtime.settings.auto_enroll.enabled = True
    person = _enroll(runtime, person2 / "1.jpg")
    assert auto_enroll.max_distance(runtime) < runtime.engine.info.threshold - 0.05  # never near the threshold

    seen = _see(runtime, person2 / "3.jpg")

    assert seen.match is not None and seen.match.person_id == person
    [added] = _auto(runtime, person)
    faces = people_service.list_faces(runtime, person)
    assert len(faces) == 2 and [f.auto for f in faces] == [False, True]
    [entry] = runtime.store.audit.query(AuditFilter(action="face_auto_enrolled"), limit=5, offset=0)[0]
    assert entry.target == person and entry.detail["match_id"] == seen.match_id
    # The same photo again is a copy of a face the person has now; 6.jpg is too like 1.jpg: neither is added.
    _see(runtime, person2 / "3.jpg")
    _see(runtime, person2 / "6.jpg")
    assert _auto(runtime, person) == [added]
    # It is an enrolled face like any other: identify finds it, DELETE removes it (photo and index entry too).
    assert people_service.face_image(runtime, person, added)[0] == (person2 / "3.jpg").read_bytes()
    people_service.delete_face(runtime, person, added)
    assert _auto(runtime, person) == []
    assert len(runtime.index) == 1


def test_the_cap_per_person_holds(runtime: Runtime, person2: Path) -> None:
    runtime.settings.auto_enroll.enabled = True
    runtime.settings.auto_enroll.max_faces = 1
    person = _enroll(runtime, person2 / "1.jpg")
    _see(runtime, person2 / "3.jpg")
    assert len(_auto(runtime, person)) == 1
    named = _see(runtime, person2 / "2.jpg")  # sure and different-looking, but the person has their one
    assert named.match is not None and named.match.person_id == person
    assert len(_auto(runtime, person)) == 1
    runtime.settings.auto_enroll.max_faces = 5
    _see(runtime, person2 / "2.jpg")
    assert len(_auto(runtime, person)) == 2


def test_a_match_near_the_threshold_is_not_added(runtime: Runtime, person2: Path) -> None:
    runtime.settings.auto_enroll.enabled = True
    runtime.settings.auto_enroll.max_distance = 0.35  # 3.jpg matches at 0.38: named, not sure enough
    person = _enroll(runtime, person2 / "1.jpg")
    seen = _see(runtime, person2 / "3.jpg")
    assert seen.match is not None and seen.match.distance > 0.35
    assert _auto(runtime, person) == []


def test_nothing_is_added_by_default(runtime: Runtime, person2: Path) -> None:
    assert runtime.settings.auto_enroll.enabled is False
    person = _enroll(runtime, person2 / "1.jpg")
    before = row_counts(runtime)
    _see(runtime, person2 / "3.jpg")
    assert _auto(runtime, person) == []
    assert row_counts(runtime)["faces"] == before["faces"]


@pytest.fixture
def fused(settings: Settings, fusion_pool: EnginePool) -> Iterator[Runtime]:
    rt = Runtime(settings, engine=fusion_pool)
    rt.open()
    yield rt
    rt.close()


def test_the_fused_engine_keeps_both_descriptors_of_an_auto_face(fused: Runtime, person2: Path) -> None:
    fused.settings.auto_enroll.enabled = True
    person = _enroll(fused, person2 / "1.jpg")
    _see(fused, person2 / "3.jpg")
    auto = [f for f in people_service.list_faces(fused, person) if f.auto]
    assert len(auto) == 2 and len({f.image_id for f in auto}) == 1  # one photo, SFace and dlib rows
    assert {f.engine for f in auto} == {"opencv", "dlib"}
