"""services.suggestions: unknown faces of real photos grouped into suggested people, dismissed, enrolled, announced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.config import Settings, SuggestionSettings
from facegate.errors import InvalidInput, NotFound
from facegate.events.base import Event
from facegate.services import identify as identify_service
from facegate.services import suggestions as suggestions_service
from facegate.services.runtime import Runtime
from facegate.services.suggestions import Grouping
from facegate.store.base import PersonCreate
from facegate.vision.pool import EnginePool


def _see(rt: Runtime, *photos: Path) -> list[int]:
    """Identify each photo as an unknown sighting; the match id of its largest face."""
    ids = []
    for photo in photos:
        face = identify_service.identify(rt, photo.read_bytes(), max_faces=1).faces[0]
        assert face.match_id is not None and face.match is None
        ids.append(face.match_id)
    return ids


def _groups(rt: Runtime) -> dict[str, set[int]]:
    page = suggestions_service.list_suggestions(rt, rt.engine.info, limit=50, offset=0)
    assert page.total == len(page.items)
    return {s.id: set(rt.store.suggestions.members(s.id)) for s in page.items}


def _grouping(rt: Runtime, events: list[Event] | None = None, **settings: object) -> Grouping:
    publish = events.append if events is not None else None
    return Grouping(rt.store, rt.engine.info, SuggestionSettings(**settings), publish)  # type: ignore[arg-type]


def test_the_shipped_distance_comes_from_the_calibration(runtime: Runtime) -> None:
    info = runtime.engine.info
    assert suggestions_service.grouping_distance(SuggestionSettings(), info) < info.threshold
    stricter = suggestions_service.grouping_distance(SuggestionSettings(false_match_rate=1e-8), info)
    assert stricter < suggestions_service.grouping_distance(SuggestionSettings(), info)
    assert suggestions_service.grouping_distance(SuggestionSettings(distance=0.3), info) == 0.3


def test_two_strangers_seen_again_and_again_make_two_suggestions(
    runtime: Runtime, identities: dict[str, list[Path]]
) -> None:
    powell = set(_see(runtime, *identities["colin_powell"][:6]))
    bush = set(_see(runtime, *identities["george_w_bush"][:6]))
    once = set(_see(runtime, identities["joe_biden"][0]))
    grouping = _grouping(runtime)

    assert grouping.catch_up() == 13
    groups = _groups(runtime)
    assert sorted(groups.values(), key=min) == [powell, bush]
    assert not once & set().union(*groups.values())

    # Faces arriving later join their group (incrementally), and a full regrouping keeps the groups' ids.
    later = set(_see(runtime, *identities["colin_powell"][6:8]))
    assert grouping.catch_up() == 2
    by_id = _groups(runtime)
    assert powell | later in by_id.values()
    assert grouping.regroup() == 0
    assert _groups(runtime) == by_id

    detail = next(s for s in by_id if by_id[s] == powell | later)
    shown = suggestions_service.get_suggestion(runtime, runtime.engine.info, detail)
    assert {f.match_id for f in shown.faces} == powell | later and shown.size == 8 and shown.sightings == 8
    assert shown.sources == ["api"] and shown.first_seen <= shown.last_seen
    representatives = [r.match_id for r in shown.representatives]
    assert len(representatives) == 4 == len(set(representatives)) and set(representatives) <= powell | later
    assert all(f.crop_url == f"/api/v1/matches/{f.match_id}/crop" for f in shown.faces)


def _side_by_side(a: Path, b: Path) -> bytes:
    """One photo with two faces: two photos of a person next to each other."""
    left, right = (cv2.imread(str(p)) for p in (a, b))
    height = 360
    left, right = (cv2.resize(i, (int(i.shape[1] * height / i.shape[0]), height)) for i in (left, right))
    ok, data = cv2.imencode(".jpg", np.hstack([left, right]))
    assert ok
    return data.tobytes()


def test_two_faces_of_one_photo_are_never_in_one_group(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    photos = identities["colin_powell"]
    requests: dict[int, str] = {}
    for i in range(4):  # four photos, each showing Powell twice
        result = identify_service.identify(runtime, _side_by_side(photos[2 * i], photos[2 * i + 1]), max_faces=2)
        assert len(result.faces) == 2
        requests |= {f.match_id: result.request_id for f in result.faces if f.match_id is not None}

    _grouping(runtime).catch_up()

    groups = _groups(runtime)
    assert groups  # Powell is suggested ...
    for members in groups.values():  # ... but no group holds both faces of one photo
        assert len({requests[m] for m in members}) == len(members)


def test_a_dismissed_stranger_is_not_suggested_again(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    photos = identities["colin_powell"]
    _see(runtime, *photos[:5])
    grouping = _grouping(runtime)
    grouping.catch_up()
    (suggestion,) = _groups(runtime)

    suggestions_service.dismiss(runtime, suggestion)

    assert _groups(runtime) == {}
    with pytest.raises(NotFound):
        suggestions_service.get_suggestion(runtime, runtime.engine.info, suggestion)
    with pytest.raises(NotFound):
        suggestions_service.dismiss(runtime, suggestion)
    later = _see(runtime, *photos[5:])  # seen again, enough for a group of their own
    grouping.catch_up()
    assert _groups(runtime) == {}
    grouping.regroup()
    _grouping(runtime).regroup()  # another process, from the store alone
    assert _groups(runtime) == {}
    assert set(later) <= set(runtime.store.suggestions.members(suggestion))  # they joined the dismissed group


def test_enrolling_a_suggestion_names_the_person_from_then_on(
    runtime: Runtime, identities: dict[str, list[Path]]
) -> None:
    photos = identities["colin_powell"]
    seen = _see(runtime, *photos[:7])
    _grouping(runtime).catch_up()
    (suggestion,) = _groups(runtime)
    with pytest.raises(InvalidInput):
        suggestions_service.enroll(runtime, suggestion, name=None, person_id=None)

    result = suggestions_service.enroll(runtime, suggestion, name="Colin Powell")

    assert 1 <= result.faces_added <= SuggestionSettings().enroll_faces
    assert result.person.name == "Colin Powell" and result.person.face_count == result.faces_added
    assert _groups(runtime) == {}
    assert all(m.person_id == result.person.id for m in runtime.store.get_matches(seen))  # sightings of them now
    named = identify_service.identify(runtime, photos[7].read_bytes()).faces[0].match
    assert named is not None and named.person_id == result.person.id
    with pytest.raises(NotFound):
        suggestions_service.enroll(runtime, suggestion, name="Again")


def test_enrolling_onto_an_existing_person(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    bush = _see(runtime, *identities["george_w_bush"][:5])
    powell = _see(runtime, *identities["colin_powell"][:5])
    _grouping(runtime).catch_up()
    first, second = _groups(runtime)
    made = suggestions_service.enroll(runtime, first, name="Someone")
    added = suggestions_service.enroll(runtime, second, name=None, person_id=made.person.id)
    assert added.person.id == made.person.id
    assert added.person.face_count == made.faces_added + added.faces_added
    assert {m.person_id for m in runtime.store.get_matches(bush + powell)} == {made.person.id}


def test_a_recurring_stranger_is_announced_once(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    photos = identities["colin_powell"]
    events: list[Event] = []
    grouping = _grouping(runtime, events, notify_after=4)
    _see(runtime, *photos[:3])
    grouping.catch_up()
    assert events == []  # a group of 3 sightings: not yet
    _see(runtime, *photos[3:5])
    grouping.catch_up()
    _see(runtime, *photos[5:7])
    grouping.catch_up()
    grouping.regroup()
    _grouping(runtime, events, notify_after=4).regroup()  # another process: it was announced already

    assert [e.type for e in events] == ["unknown_person_recurring"]
    (suggestion,) = _groups(runtime)
    body = events[0].body()
    assert body["suggestion_id"] == suggestion and body["sightings"] >= 4 and body["size"] == body["sightings"]
    assert set(body) == {"type", "at", "suggestion_id", "size", "sightings", "first_seen", "last_seen"}


def test_purged_history_leaves_no_stale_suggestion(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    _see(runtime, *identities["colin_powell"][:5])
    grouping = _grouping(runtime)
    grouping.catch_up()
    (suggestion,) = _groups(runtime)

    runtime.store.purge_matches(datetime.now(UTC) + timedelta(days=1))

    assert _groups(runtime) == {}
    assert runtime.store.suggestions.get(suggestion) is None
    assert grouping.regroup() == 0
    _see(runtime, *identities["george_w_bush"][:4])
    grouping.catch_up()  # the purged faces are gone from its view too: Bush alone
    (bush,) = _groups(runtime).values()
    assert len(bush) == 4


def test_faces_named_later_leave_their_group(runtime: Runtime, identities: dict[str, list[Path]]) -> None:
    seen = _see(runtime, *identities["colin_powell"][:6])
    grouping = _grouping(runtime)
    grouping.catch_up()
    (suggestion,) = _groups(runtime)
    person = runtime.store.save_enrollment(PersonCreate(name="Powell"), [])[0]
    for match_id in seen[:2]:  # relabelled in history (retro-search, a merge): sightings of a person now
        assert runtime.store.label_match(match_id, person.id)

    grouping.regroup()

    assert _groups(runtime) == {suggestion: set(seen[2:])}


def test_a_pass_that_fails_to_save_is_redone_from_the_store(
    runtime: Runtime, identities: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store busy when a placement is saved: the next pass must still put the faces in a group (they were
    placed in memory only, and would otherwise never be saved)."""
    grouping = _grouping(runtime)
    assert grouping.catch_up() == 0
    powell = set(_see(runtime, *identities["colin_powell"][:4]))
    store = runtime.store.suggestions
    real_save = store.save_grouping
    calls = []

    def busy_once(update: object) -> int:
        calls.append(update)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return real_save(update)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "save_grouping", busy_once)
    with pytest.raises(RuntimeError):
        grouping.catch_up()
    assert _groups(runtime) == {}
    grouping.catch_up()
    assert list(_groups(runtime).values()) == [powell]


def test_of_two_replicas_on_one_postgresql_only_one_groups(
    pg_url: str, tmp_path: Path, opencv_pool: EnginePool, identities: dict[str, list[Path]]
) -> None:
    """Two API replicas (runtimes) on one PostgreSQL each run the grouping loop: only the one holding the store's
    lock groups; when it goes, the other takes over from the store."""
    replicas = [
        Runtime(
            Settings(data_dir=tmp_path / name, workers=1, database={"url": pg_url, "auto_migrate": True}),
            engine=opencv_pool,
        )
        for name in ("a", "b")
    ]
    for rt in replicas:
        rt.open()
    open_ = list(replicas)
    try:
        a, b = (Grouping.of(rt) for rt in replicas)
        powell = set(_see(replicas[0], *identities["colin_powell"][:5]))
        assert a.catch_up() == 5 and b.catch_up() == 0
        assert b.regroup() == 0  # the periodic regrouping is the leader's too
        assert list(_groups(replicas[1]).values()) == [powell]
        bush = set(_see(replicas[1], *identities["george_w_bush"][:5]))
        open_.remove(replicas[0])
        replicas[0].close()  # the leader stops
        assert b.catch_up() == 10  # takes over: every unknown face, from the store
        assert sorted(_groups(replicas[1]).values(), key=min) == sorted([powell, bush], key=min)
    finally:
        for rt in open_:
            rt.close()
