"""services.people: delete purges rows, index entries and blobs; a blob that cannot be deleted is swept later."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from facegate.errors import Conflict, InvalidInput, NotFound
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import matches as matches_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import PersonUpdate, Upload
from facegate.store.blobs import FileBlobStore
from facegate.store.models import MatchRecord
from tests.support import blob_files, enroll_photos, pending_blob_count, row_counts, sql


class UndeletableBlobStore(FileBlobStore):
    def delete(self, key: str) -> None:
        raise PermissionError(13, "Permission denied (injected)", key)


def test_delete_purges_everything_of_that_person_only(runtime: Runtime, dev: Path) -> None:
    powell = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
    bush = enroll_photos(runtime, "George W. Bush", dev / "george_w_bush" / "1.jpg")
    identify_service.identify(runtime, (dev / "colin_powell" / "3.jpg").read_bytes())
    identify_service.identify(runtime, (dev / "george_w_bush" / "2.jpg").read_bytes())
    assert row_counts(runtime) == {"people": 2, "images": 3, "faces": 3, "matches": 2}
    assert len(blob_files(runtime)) == 5  # 3 photos, 2 crops

    people_service.delete_person(runtime, powell)

    assert row_counts(runtime) == {"people": 1, "images": 1, "faces": 1, "matches": 1}
    assert len(blob_files(runtime)) == 2
    assert len(runtime.index) == 1
    with sql(runtime).db.session() as session:
        assert session.scalars(select(MatchRecord.person_id)).all() == [bush]
    # Bush's match listed Powell as a runner-up candidate: history shows him no more (nothing was rewritten).
    [remaining] = matches_service.list_matches(runtime, limit=10, offset=0).items
    assert remaining.candidates and all(c.person_id != powell for c in remaining.candidates)
    probe = identify_service.identify(runtime, (dev / "colin_powell" / "3.jpg").read_bytes())
    assert all(c.person_id != powell for f in probe.faces for c in f.candidates)


def test_delete_unknown_person(runtime: Runtime) -> None:
    with pytest.raises(NotFound) as raised:
        people_service.delete_person(runtime, "nobody")
    assert raised.value.code == "person_not_found"


def test_blob_that_cannot_be_deleted_is_left_for_the_orphan_sweep(runtime: Runtime, dev: Path) -> None:
    person = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    [leftover] = blob_files(runtime)
    real = runtime.blobs
    runtime.blobs = UndeletableBlobStore(runtime.settings.blob_path)

    people_service.delete_person(runtime, person)  # the person is gone even so

    assert row_counts(runtime)["people"] == 0
    assert len(runtime.index) == 0
    assert leftover.exists()
    assert pending_blob_count(runtime) == 1
    runtime.blobs = real
    assert runtime.settle_pending_blobs(grace_seconds=0) == 1
    assert blob_files(runtime) == []
    assert pending_blob_count(runtime) == 0


def test_update_and_list(runtime: Runtime, dev: Path) -> None:
    a = enroll_photos(runtime, "Alpha", dev / "colin_powell" / "1.jpg")
    b = enroll_photos(runtime, "Beta", dev / "george_w_bush" / "1.jpg")

    updated = people_service.update_person(runtime, a, PersonUpdate(name="Alpha One", external_id="x-1"))
    assert (updated.name, updated.external_id, updated.face_count) == ("Alpha One", "x-1", 1)
    with pytest.raises(Conflict):
        people_service.update_person(runtime, b, PersonUpdate(external_id="x-1"))

    page = people_service.list_people(runtime, limit=10, offset=0, name="one")
    assert [p.id for p in page.items] == [a]
    assert people_service.list_people(runtime, limit=1, offset=1, name=None).items[0].id == b


@pytest.mark.parametrize("pattern", ["%", "_", "\\"])
def test_name_filter_takes_wildcards_literally(runtime: Runtime, dev: Path, pattern: str) -> None:
    enroll_photos(runtime, "Plain Name", dev / "colin_powell" / "1.jpg")
    assert people_service.list_people(runtime, limit=10, offset=0, name=pattern).total == 0


def test_an_empty_external_id_is_none_so_two_people_can_have_it(runtime: Runtime, dev: Path) -> None:
    a = enroll_photos(runtime, "A", dev / "colin_powell" / "1.jpg")
    b = enroll_photos(runtime, "B", dev / "george_w_bush" / "1.jpg")
    assert people_service.update_person(runtime, a, PersonUpdate(external_id="")).external_id is None
    assert people_service.update_person(runtime, b, PersonUpdate(external_id="")).external_id is None


def test_merge_moves_photos_faces_and_history_and_keeps_shared_photos_once(runtime: Runtime, dev: Path) -> None:
    photos = [dev / "colin_powell" / f"{n}.jpg" for n in (1, 2, 3)]
    upload = [Upload(p.name, p.read_bytes()) for p in photos]
    second = enroll_service.enroll(runtime, upload[1:], name="C. Powell").person.id
    seen = identify_service.identify(runtime, (dev / "colin_powell" / "4.jpg").read_bytes()).faces[0]
    assert seen.match is not None and seen.match.person_id == second and seen.match_id is not None
    first = enroll_service.enroll(runtime, upload[:2], name="Colin Powell").person.id  # photo 2 in both
    files_before = set(blob_files(runtime))

    merged = people_service.merge_people(runtime, first, second)

    assert merged.id == first and merged.face_count == 3  # photos 1, 2, 3: the shared one kept once
    with pytest.raises(NotFound):
        people_service.get_person(runtime, second)
    assert len(files_before - set(blob_files(runtime))) == 1  # the duplicate photo's file is gone
    assert pending_blob_count(runtime) == 0
    assert {f.person_id for f in runtime.store.list_faces(first)} == {first}
    # The index names the moved faces after the person who stays; history follows.
    again = identify_service.identify(runtime, (dev / "colin_powell" / "4.jpg").read_bytes()).faces[0]
    assert again.match is not None and again.match.person_id == first
    assert matches_service.get_match(runtime, seen.match_id).person_id == first
    assert len(runtime.index) == 3


def test_merge_refuses_one_person_into_themselves_or_a_missing_one(runtime: Runtime, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    person = enroll_service.enroll(runtime, [Upload(photo.name, photo.read_bytes())], name="Powell").person.id
    with pytest.raises(InvalidInput):
        people_service.merge_people(runtime, person, person)
    with pytest.raises(NotFound):
        people_service.merge_people(runtime, person, "no-such-person")
    assert people_service.get_person(runtime, person).face_count == 1
