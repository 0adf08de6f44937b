"""services.rejections: "not this person" stops a stranger who looks like an enrolled person from being named
as them again, while the person's own photos still are."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate.errors import Conflict, NotFound
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import matches as matches_service
from facegate.services import people as people_service
from facegate.services import rejections
from facegate.services import sightings as sightings_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import IdentifiedFace, Upload


def _enroll(rt: Runtime, name: str, photo: Path) -> str:
    return enroll_service.enroll(rt, [Upload(photo.name, photo.read_bytes())], name=name).person.id


def _face(rt: Runtime, photo: Path) -> IdentifiedFace:
    return identify_service.identify(rt, photo.read_bytes()).faces[0]


def test_a_rejected_lookalike_is_not_named_again_and_the_person_still_is(runtime: Runtime, dev: Path) -> None:
    # On the dev set, deepface_person_10's photos fall within the default threshold of deepface_person_11/2.jpg
    # (0.55 and 0.57 against 0.5845): with only that photo enrolled, person 10 is named as person 11.
    p11 = _enroll(runtime, "Person 11", dev / "deepface_person_11" / "2.jpg")
    first = _face(runtime, dev / "deepface_person_10" / "5.jpg")
    assert first.match is not None and first.match.person_id == p11
    assert _face(runtime, dev / "deepface_person_10" / "2.jpg").match is not None  # named too, before the reject

    assert first.match_id is not None
    rejected, person_id = rejections.reject_match(runtime, first.match_id)
    assert person_id == p11
    assert rejected.rejected and rejected.person_id is None and rejected.name is None

    again = _face(runtime, dev / "deepface_person_10" / "2.jpg")
    assert again.match is None
    assert again.reason == "rejected_lookalike"
    [flagged] = [c for c in again.candidates if c.person_id == p11]
    assert flagged.rejected_lookalike and flagged.distance <= runtime.engine.info.threshold
    # The person's own photos are nearer their enrolled face than the rejected one: still named.
    for n in (1, 3, 4):
        own = _face(runtime, dev / "deepface_person_11" / f"{n}.jpg")
        assert own.match is not None and own.match.person_id == p11, n
        assert not own.match.rejected_lookalike
    # History: the rejected match is an unknown face now, flagged, and stays so when listed.
    listed = matches_service.get_match(runtime, first.match_id)
    assert listed.rejected and listed.person_id is None
    # ... and is not a past sighting of the person it was rejected for (nor is the lookalike seen after).
    sightings = sightings_service.person_sightings(runtime, p11, limit=100)
    assert not {first.match_id, again.match_id} & {item.match.id for item in sightings.items}


def test_a_loose_threshold_names_more_lookalikes_and_rejection_still_holds(runtime: Runtime, dev: Path) -> None:
    p11 = _enroll(runtime, "Person 11", dev / "deepface_person_11" / "2.jpg")
    loose = 0.65
    seen = identify_service.identify(runtime, (dev / "deepface_person_10" / "5.jpg").read_bytes(), threshold=loose)
    assert seen.faces[0].match_id is not None
    rejections.reject_match(runtime, seen.faces[0].match_id)
    later = identify_service.identify(runtime, (dev / "deepface_person_10" / "3.jpg").read_bytes(), threshold=loose)
    [face] = later.faces
    assert face.candidates[0].person_id == p11 and face.candidates[0].distance <= loose  # would be named
    assert face.match is None and face.reason == "rejected_lookalike"


def test_rejections_follow_a_merge(runtime: Runtime, dev: Path) -> None:
    p11 = _enroll(runtime, "Person 11", dev / "deepface_person_11" / "2.jpg")
    other = _enroll(runtime, "Person 11 again", dev / "deepface_person_11" / "1.jpg")
    first = _face(runtime, dev / "deepface_person_10" / "5.jpg")
    assert first.match is not None and first.match.person_id == p11 and first.match_id is not None
    rejections.reject_match(runtime, first.match_id)
    info = runtime.engine.info
    people_service.merge_people(runtime, other, p11)
    [moved] = runtime.store.rejected_faces([other], info.name, info.model_version)
    assert moved.match_id == first.match_id


def test_reject_refuses_unknown_and_missing_matches(runtime: Runtime, dev: Path) -> None:
    unknown = _face(runtime, dev / "colin_powell" / "1.jpg")  # nobody enrolled
    assert unknown.match_id is not None
    with pytest.raises(Conflict) as raised:
        rejections.reject_match(runtime, unknown.match_id)
    assert raised.value.code == "match_not_named"
    with pytest.raises(NotFound) as missing:
        rejections.reject_match(runtime, 10_000)
    assert missing.value.code == "match_not_found"
