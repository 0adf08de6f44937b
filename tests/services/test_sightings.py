"""services.sightings: once a person is enrolled, their past unknown sightings in match history are found."""

from __future__ import annotations

from pathlib import Path

import pytest

from facegate.errors import NotFound
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import matches as matches_service
from facegate.services import sightings as sightings_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.base import AuditFilter


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


def test_relabelling_names_past_sightings_at_the_stricter_bar_when_enabled(
    runtime: Runtime, identities: dict[str, list[Path]]
) -> None:
    powell, bush, biden = identities["colin_powell"], identities["george_w_bush"], identities["joe_biden"]
    seen_powell = _see(runtime, *powell[1:])
    seen_others = _see(runtime, *bush[:5], *biden)
    runtime.settings.sightings.relabel = True
    bar = sightings_service.relabel_distance(runtime)
    assert bar < runtime.engine.info.threshold  # stricter than identify's

    enrolled = enroll_service.enroll(runtime, [Upload(p.name, p.read_bytes()) for p in powell[:1]], name="Powell")

    rows = {m.id: m for m in matches_service.list_matches(runtime, limit=100, offset=0).items}
    relabelled = {i for i, m in rows.items() if m.relabelled}
    assert relabelled and relabelled <= set(seen_powell)
    assert len(relabelled) >= 0.7 * len(seen_powell)
    assert all(rows[i].person_id == enrolled.person.id and rows[i].name == "Powell" for i in relabelled)
    assert all(rows[i].distance is not None and rows[i].distance <= bar for i in relabelled)
    assert all(rows[i].person_id is None for i in seen_others)
    [entry] = [e for e in runtime.store.audit.query(AuditFilter(action="sightings_relabelled"), limit=5, offset=0)[0]]
    assert entry.target == enrolled.person.id and entry.detail["count"] == len(relabelled)
    # Relabelled rows are named now: retro-search no longer lists them as unknown sightings.
    page = sightings_service.person_sightings(runtime, enrolled.person.id, limit=100)
    assert not {item.match.id for item in page.items} & relabelled


def test_no_relabelling_by_default(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    powell = identities["colin_powell"]
    seen = _see(runtime, *powell[1:4])
    assert runtime.settings.sightings.relabel is False
    enroll_service.enroll(runtime, [Upload(p.name, p.read_bytes()) for p in powell[:1]], name="Powell")
    rows = matches_service.list_matches(runtime, limit=100, offset=0).items
    assert all(m.person_id is None and not m.relabelled for m in rows if m.id in seen)
