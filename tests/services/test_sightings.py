"""services.sightings: once a person is enrolled, their past unknown sightings in match history are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate.errors import NotFound
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import sightings as sightings_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload


def _see(rt: Runtime, *photos: Path) -> list[int]:
    """Identify each photo; the match ids of their (largest) faces."""
    ids = []
    for photo in photos:
        face = identify_service.identify(rt, photo.read_bytes()).faces[0]
        assert face.match_id is not None
        ids.append(face.match_id)
    return ids


def test_a_person_enrolled_later_finds_their_past_sightings_and_nobody_elses(
    runtime: Runtime, identities: dict[str, list[Path]]
) -> None:
    powell, bush, biden = identities["colin_powell"], identities["george_w_bush"], identities["joe_biden"]
    seen_powell = _see(runtime, *powell[1:])  # 9 sightings while nobody is enrolled
    seen_others = _see(runtime, *bush[:5], *biden)
    enrolled = enroll_service.enroll(runtime, [Upload(p.name, p.read_bytes()) for p in powell[:1]], name="Powell")
    later = _see(runtime, powell[1])  # named now: a match, not an unknown sighting

    page = sightings_service.person_sightings(runtime, enrolled.person.id, limit=100)

    found = [item.match.id for item in page.items]
    assert len(set(found) & set(seen_powell)) >= 0.95 * len(seen_powell)
    assert not set(found) & set(seen_others)  # no false sightings among other people's faces
    assert not set(found) & set(later)
    assert page.searched == runtime.store.counts()["unknown_matches"]  # every unknown face kept, other faces too
    distances = [item.distance for item in page.items]
    assert distances == sorted(distances) and all(d <= page.threshold for d in distances)
    assert all(item.match.person_id is None and item.match.has_crop for item in page.items)

    assert len(sightings_service.person_sightings(runtime, enrolled.person.id, limit=2).items) == 2


def test_sightings_of_an_unknown_person_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(NotFound):
        sightings_service.person_sightings(runtime, "no-such-person", limit=10)
