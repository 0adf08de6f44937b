"""services.matches: purging old history (rows and crops, in batches); candidates named when read."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from facegate.errors import NotFound
from facegate.services import matches as matches_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import PersonUpdate
from facegate.store.models import MatchRecord
from tests.support import (
    backdate_matches,
    blob_files,
    enroll_photos,
    identify_times,
    pending_blob_count,
    row_counts,
    sql,
)


def _crops(rt: Runtime, match_ids: list[int]) -> dict[int, Path]:
    with sql(rt).db.session() as session:
        rows = session.execute(select(MatchRecord.id, MatchRecord.crop_key).where(MatchRecord.id.in_(match_ids)))
        crops = {i: rt.settings.blob_path / k for i, k in rows if k}
    assert len(crops) == len(match_ids) and all(p.is_file() for p in crops.values())
    return crops


def _remaining(rt: Runtime) -> list[int]:
    with sql(rt).db.session() as session:
        return sorted(session.scalars(select(MatchRecord.id)))


@pytest.mark.parametrize("batch", [1000, 2], ids=["one-batch", "batches-of-2"])
def test_purge_deletes_only_history_older_than_the_cutoff_with_its_crops(
    runtime: Runtime, dev: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(matches_service, "PURGE_BATCH", batch)
    enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    ids = identify_times(runtime, dev / "colin_powell" / "2.jpg", 5)
    old, recent = ids[:3], ids[3:]
    crops = _crops(runtime, ids)
    backdate_matches(runtime, old[:2], days=40)
    backdate_matches(runtime, old[2:], days=31)
    backdate_matches(runtime, recent[:1], days=29)  # inside the retention: kept
    photo_files = set(blob_files(runtime)) - set(crops.values())

    assert matches_service.purge_history(runtime, older_than_days=30) == 3

    assert _remaining(runtime) == recent
    assert all(not crops[i].exists() for i in old)
    assert all(crops[i].is_file() for i in recent)
    assert set(blob_files(runtime)) == photo_files | {crops[i] for i in recent}
    assert pending_blob_count(runtime) == 0
    assert row_counts(runtime) == {"people": 1, "images": 1, "faces": 1, "matches": 2}
    # Nothing older is left: a second purge finds nothing.
    assert matches_service.purge_history(runtime, older_than_days=30) == 0
    assert _remaining(runtime) == recent


def test_purge_of_an_exact_multiple_of_the_batch(runtime: Runtime, dev: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full last batch is followed by an empty one, which ends the loop (no endless loop, no miscount)."""
    monkeypatch.setattr(matches_service, "PURGE_BATCH", 2)
    ids = identify_times(runtime, dev / "colin_powell" / "2.jpg", 4)  # unknown faces: nobody is enrolled
    backdate_matches(runtime, ids, days=10)

    assert matches_service.purge_history(runtime, older_than_days=1) == 4

    assert _remaining(runtime) == []
    assert blob_files(runtime) == []
    assert pending_blob_count(runtime) == 0


def test_purge_with_nothing_old_enough(runtime: Runtime, dev: Path) -> None:
    ids = identify_times(runtime, dev / "colin_powell" / "2.jpg", 2)
    assert matches_service.purge_history(runtime, older_than_days=0.5) == 0
    assert _remaining(runtime) == ids
    assert len(blob_files(runtime)) == 2


def test_history_names_candidates_when_read(runtime: Runtime, dev: Path) -> None:
    """A rename shows in old matches; a deleted person drops out of other matches' candidates."""
    powell = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    bush = enroll_photos(runtime, "George W. Bush", dev / "george_w_bush" / "1.jpg")
    [powell_seen] = identify_times(runtime, dev / "colin_powell" / "2.jpg", 1)
    [bush_seen] = identify_times(runtime, dev / "george_w_bush" / "2.jpg", 1)
    [stranger_seen] = identify_times(runtime, dev / "ariel_sharon" / "1.jpg", 1)

    def candidates(match_id: int) -> list[tuple[str, str]]:
        return [(c.person_id, c.name) for c in matches_service.get_match(runtime, match_id).candidates]

    first = matches_service.get_match(runtime, powell_seen)
    assert first.person_id == powell and first.name == "Colin Powell"
    assert candidates(powell_seen) == [(powell, "Colin Powell"), (bush, "George W. Bush")]
    assert first.candidates[0].distance < first.candidates[1].distance
    assert set(candidates(stranger_seen)) == {(powell, "Colin Powell"), (bush, "George W. Bush")}

    people_service.update_person(runtime, bush, PersonUpdate(name="George Bush"))

    assert candidates(powell_seen) == [(powell, "Colin Powell"), (bush, "George Bush")]
    assert matches_service.get_match(runtime, bush_seen).name == "George Bush"
    listed = {m.id: m for m in matches_service.list_matches(runtime, limit=10, offset=0).items}
    assert (bush, "George Bush") in [(c.person_id, c.name) for c in listed[stranger_seen].candidates]

    people_service.delete_person(runtime, bush)

    # Bush's own match went with him; the others stay, without him among their candidates.
    assert _remaining(runtime) == sorted([powell_seen, stranger_seen])
    assert candidates(powell_seen) == [(powell, "Colin Powell")]
    assert candidates(stranger_seen) == [(powell, "Colin Powell")]
    page = matches_service.list_matches(runtime, limit=10, offset=0)
    assert page.total == 2
    assert all(c.person_id != bush for m in page.items for c in m.candidates)
    # The stored rows were not rewritten: the candidate is still there, and simply not shown.
    with sql(runtime).db.session() as session:
        stored = session.get_one(MatchRecord, powell_seen).candidates
    assert bush in [c["person_id"] for c in stored]


@pytest.mark.parametrize("loss", ["missing", "empty"])
def test_a_crop_lost_to_a_power_failure_is_not_found(runtime: Runtime, dev: Path, loss: str) -> None:
    # Crops are not fsynced by default (IdentifySettings.durable_crops): after a power loss the file of a
    # recent crop can be gone or empty while its match row survived.
    [match_id] = identify_times(runtime, dev / "colin_powell" / "1.jpg", 1)
    match = sql(runtime).get_match(match_id)
    assert match is not None and match.crop_key
    crop_key = match.crop_key
    path = runtime.settings.blob_path / crop_key
    if loss == "missing":
        path.unlink()
    else:
        path.write_bytes(b"")
    with pytest.raises(NotFound) as caught:
        matches_service.match_crop(runtime, match_id)
    assert caught.value.code == "crop_not_found"
