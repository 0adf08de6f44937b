"""services.search: a probe photo searches the gallery and match history; nothing is written."""

from __future__ import annotations

from pathlib import Path

from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import search as search_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from tests.support import row_counts


def _seen(rt: Runtime, *photos: Path) -> list[int]:
    ids = []
    for photo in photos:
        match_id = identify_service.identify(rt, photo.read_bytes()).faces[0].match_id
        assert match_id is not None
        ids.append(match_id)
    return ids


def test_search_finds_the_person_and_their_past_sightings_and_writes_nothing(
    runtime: Runtime, identities: dict[str, list[Path]]
) -> None:
    powell, bush = identities["colin_powell"], identities["george_w_bush"]
    unknown_powell = _seen(runtime, *powell[2:])  # before anyone is enrolled: unknown faces
    seen_bush = _seen(runtime, *bush[:5])
    enrolled = enroll_service.enroll(runtime, [Upload(powell[0].name, powell[0].read_bytes())], name="Powell")
    named_powell = _seen(runtime, powell[1])
    before = row_counts(runtime)

    result = search_service.search(runtime, powell[1].read_bytes(), max_faces=1)

    assert row_counts(runtime) == before  # no history row, no crop
    [face] = result.faces
    assert face.candidates[0].person_id == enrolled.person.id
    found = [s.match_id for s in face.sightings]
    assert found[0] == named_powell[0]  # the same photo, seen before: distance ~0
    assert len(set(found) & set(unknown_powell)) >= 0.9 * len(unknown_powell)
    assert not set(found) & set(seen_bush)
    assert result.searched == before["matches"]
    distances = [s.distance for s in face.sightings]
    assert distances == sorted(distances) and distances[-1] <= result.threshold
    named = next(s for s in face.sightings if s.match_id == named_powell[0])
    assert named.person_id == enrolled.person.id and named.name == "Powell" and named.source == "api"
    assert named.crop_url == f"/api/v1/matches/{named.match_id}/crop"
    assert all(s.person_id is None for s in face.sightings if s.match_id in unknown_powell)

    limited = search_service.search(runtime, powell[1].read_bytes(), max_faces=1, limit=2)
    assert [s.match_id for s in limited.faces[0].sightings] == found[:2]


def test_search_of_a_photo_without_faces(runtime: Runtime, dev: Path) -> None:
    photo = sorted((dev / "noface").glob("*.jpg"))[0]
    result = search_service.search(runtime, photo.read_bytes())
    assert result.faces == []
