"""services.people.split_person: a wrongly merged person split back gives identify the right names again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.config import Settings
from facegate.errors import InvalidInput, NotFound
from facegate.services import identify as identify_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import PersonSplit
from facegate.vision.pool import EnginePool
from tests.support import enroll_photos, row_counts


def _named(rt: Runtime, photo: Path) -> str | None:
    match = identify_service.identify(rt, photo.read_bytes()).faces[0].match
    return match.name if match else None


@pytest.fixture
def fused(settings: Settings, fusion_pool: EnginePool) -> Iterator[Runtime]:
    rt = Runtime(settings, engine=fusion_pool)
    rt.open()
    yield rt
    rt.close()


def _merge_then_split(rt: Runtime, identities: dict[str, list[Path]]) -> None:
    powell, bush = identities["colin_powell"], identities["george_w_bush"]
    p = enroll_photos(rt, "Colin Powell", *powell[:2])
    b = enroll_photos(rt, "George W. Bush", *bush[:2])
    bush_faces = [f.id for f in people_service.list_faces(rt, b)]
    people_service.merge_people(rt, p, b)  # the mistake
    assert _named(rt, bush[2]) == "Colin Powell"

    # One face per photo is enough: every face row of that photo (both descriptors under fusion) moves.
    one_per_photo = {f.image_id: f.id for f in people_service.list_faces(rt, p) if f.id in bush_faces}
    chosen = sorted(one_per_photo.values())
    before = row_counts(rt)
    moved = people_service.split_person(rt, p, PersonSplit(face_ids=chosen, name="George Bush"))

    assert moved.name == "George Bush" and moved.id != p
    assert {f.id for f in people_service.list_faces(rt, moved.id)} == set(bush_faces)
    assert not {f.id for f in people_service.list_faces(rt, p)} & set(bush_faces)
    assert row_counts(rt) == {**before, "people": before["people"] + 1}  # nothing lost, nothing duplicated
    assert _named(rt, bush[2]) == "George Bush"
    assert _named(rt, powell[2]) == "Colin Powell"


def test_a_wrong_merge_split_back_names_both_people_again(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    _merge_then_split(runtime, identities)


def test_split_moves_every_descriptor_of_a_photo_under_fusion(
    fused: Runtime, identities: dict[str, list[Path]]
) -> None:
    _merge_then_split(fused, identities)


def test_split_to_an_existing_person(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    powell, bush = identities["colin_powell"], identities["george_w_bush"]
    p = enroll_photos(runtime, "Colin Powell", powell[0], bush[0])  # a mislabelled photo
    b = enroll_photos(runtime, "George W. Bush", bush[1])
    wrong = [f.id for f in people_service.list_faces(runtime, p)][1:]
    moved = people_service.split_person(runtime, p, PersonSplit(face_ids=wrong, person_id=b))
    assert moved.id == b and moved.face_count == 2
    assert _named(runtime, bush[2]) == "George W. Bush"


def test_split_refuses_bad_requests_and_changes_nothing(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    powell, bush = identities["colin_powell"], identities["george_w_bush"]
    p = enroll_photos(runtime, "Colin Powell", powell[0])
    b = enroll_photos(runtime, "George W. Bush", bush[0])
    [own] = [f.id for f in people_service.list_faces(runtime, p)]
    [theirs] = [f.id for f in people_service.list_faces(runtime, b)]
    before = row_counts(runtime)
    with pytest.raises(NotFound) as raised:  # a face of someone else: nothing moves, not even the own face
        people_service.split_person(runtime, p, PersonSplit(face_ids=[own, theirs], name="X"))
    assert raised.value.code == "face_not_found"
    with pytest.raises(NotFound) as raised:
        people_service.split_person(runtime, p, PersonSplit(face_ids=[own], person_id="nobody"))
    assert raised.value.code == "person_not_found"
    with pytest.raises(InvalidInput) as invalid:
        people_service.split_person(runtime, p, PersonSplit(face_ids=[own], person_id=p))
    assert invalid.value.code == "same_person"
    with pytest.raises(InvalidInput) as invalid:
        people_service.split_person(runtime, p, PersonSplit(face_ids=[own], name="X", person_id=b))
    assert invalid.value.code == "name_or_person_id"
    assert row_counts(runtime) == before
