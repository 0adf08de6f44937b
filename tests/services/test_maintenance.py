"""services.maintenance: retention purge, settling pending blobs, trimming the change log; and the service's
periodic run of it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from facegate.app import create_app
from facegate.config import Settings
from facegate.errors import ConfigurationError
from facegate.services import identify as identify_service
from facegate.services import maintenance
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.store.models import FaceChangeRecord, ImageRecord, MatchRecord, PendingBlob
from facegate.vision.pool import EnginePool
from tests.support import (
    backdate_matches,
    blob_files,
    enroll_photos,
    identify_times,
    image_field,
    pending_blob_count,
    sql,
)


def _match_ids(rt: Runtime) -> list[int]:
    with sql(rt).db.session() as session:
        return sorted(session.scalars(select(MatchRecord.id)))


def test_without_match_retention_history_is_kept(runtime: Runtime, dev: Path) -> None:
    assert runtime.settings.retention.match_days is None
    ids = identify_times(runtime, dev / "colin_powell" / "1.jpg", 2)
    backdate_matches(runtime, ids, days=3650)

    result = maintenance.run(runtime)

    assert result.matches_purged == 0
    assert _match_ids(runtime) == ids
    assert len(blob_files(runtime)) == 2  # the crops


def test_with_match_retention_old_history_is_purged(runtime: Runtime, dev: Path) -> None:
    runtime.settings.retention.match_days = 30
    old, recent = identify_times(runtime, dev / "colin_powell" / "1.jpg", 2)
    backdate_matches(runtime, [old], days=31)

    result = maintenance.run(runtime)

    assert result.matches_purged == 1
    assert _match_ids(runtime) == [recent]
    assert len(blob_files(runtime)) == 1
    assert pending_blob_count(runtime) == 0
    assert maintenance.run(runtime).matches_purged == 0


def test_pending_blobs_older_than_the_grace_are_settled(runtime: Runtime, dev: Path) -> None:
    """Left by interrupted operations: an orphan past the grace is deleted; one within the grace may belong to
    a request in flight and stays; a pending key some row points at is kept and forgotten."""
    enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
    with sql(runtime).db.session() as session:
        enrolled = session.scalars(select(ImageRecord.blob_key)).one()
    for key in ("images/zz/orphan-old.jpg", "images/zz/orphan-new.jpg"):
        runtime.put_blobs([(key, b"interrupted write")])  # recorded as pending; no row ever stored
    runtime.store.begin_blob_writes([enrolled])  # as an interrupted delete would leave it
    with sql(runtime).db.session() as session:
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        session.execute(
            update(PendingBlob)
            .where(PendingBlob.key.in_(["images/zz/orphan-old.jpg", enrolled]))
            .values(created_at=hour_ago)
        )
    root = runtime.settings.blob_path
    assert runtime.settings.retention.pending_blob_grace_seconds < 3600

    result = maintenance.run(runtime)

    assert result.blobs_settled == 1
    assert not (root / "images/zz/orphan-old.jpg").exists()
    assert (root / "images/zz/orphan-new.jpg").is_file()
    assert (root / enrolled).is_file()
    with sql(runtime).db.session() as session:
        assert list(session.scalars(select(PendingBlob.key))) == ["images/zz/orphan-new.jpg"]
    # Once past its grace, the young orphan goes too.
    assert maintenance.run(runtime, pending_grace_seconds=0).blobs_settled == 1
    assert pending_blob_count(runtime) == 0
    assert blob_files(runtime) == [root / enrolled]


def test_old_change_log_entries_are_trimmed_and_a_lagging_replica_reloads(
    settings: Settings, opencv_pool: EnginePool, runtime: Runtime, dev: Path
) -> None:
    lagging = Runtime(settings, engine=opencv_pool)
    lagging.open()
    try:
        powell = enroll_photos(runtime, "Colin Powell", dev / "colin_powell" / "1.jpg")
        lagging.sync_index()
        assert len(lagging.index) == 1
        bush = enroll_photos(runtime, "George W. Bush", dev / "george_w_bush" / "1.jpg")
        amy = enroll_photos(runtime, "Amy Adams", dev / "amy_adams" / "1.jpg")
        people_service.delete_person(runtime, powell)
        with sql(runtime).db.session() as session:
            assert len(session.scalars(select(FaceChangeRecord.seq)).all()) == 4
            session.execute(update(FaceChangeRecord).values(created_at=datetime.now(UTC) - timedelta(days=8)))
        assert runtime.settings.retention.change_log_days == 7

        result = maintenance.run(runtime)

        # All but the newest entry, which tells a fresh reader where the log stands.
        assert result.changes_trimmed == 3
        assert runtime.store.changes_since(1) is None
        assert maintenance.run(runtime).changes_trimmed == 0

        # The lagging replica had seen only the first entry: it cannot replay, so it reloads.
        lagging.sync_index()
        assert len(lagging.index) == 2
        probe = dev / "george_w_bush" / "2.jpg"
        seen = identify_service.identify(lagging, probe.read_bytes()).faces[0]
        assert seen.match is not None and seen.match.person_id == bush
        assert {c.person_id for c in seen.candidates} == {bush, amy}
        # The replica that wrote everything is level with the log, and both follow changes made after the trim.
        people_service.delete_person(runtime, amy)
        runtime.sync_index()
        lagging.sync_index()
        assert len(runtime.index) == len(lagging.index) == 1
    finally:
        lagging.close()


def test_the_service_runs_maintenance_periodically(tmp_path: Path, dev: Path) -> None:
    """The app's lifespan opens its own runtime and runs maintenance every `interval_seconds`."""
    key = "fg_" + "k" * 40  # the deployment's bootstrap admin key
    settings = Settings(
        data_dir=tmp_path / "data",
        workers=1,
        retention={"interval_seconds": 1, "match_days": 1},
        auth={"bootstrap_key": key},
    )
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
        rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        ids = []
        for _ in range(2):
            response = client.post("/api/v1/identify", files=[image_field(dev / "colin_powell" / "1.jpg")])
            assert response.status_code == 200, response.text
            ids.append(response.json()["faces"][0]["match_id"])
        old, recent = ids
        backdate_matches(rt, [old], days=2)
        assert len(blob_files(rt)) == 2

        deadline = time.monotonic() + 10
        while client.get("/api/v1/matches").json()["total"] > 1 and time.monotonic() < deadline:
            time.sleep(0.2)

        assert [m["id"] for m in client.get("/api/v1/matches").json()["items"]] == [recent]
        assert len(blob_files(rt)) == 1
        assert client.get(f"/api/v1/matches/{old}").status_code == 404


@pytest.mark.parametrize("interval", [0, 0.5])
def test_the_maintenance_interval_cannot_be_a_busy_loop(interval: float) -> None:
    with pytest.raises(ConfigurationError, match="interval_seconds"):
        Settings(retention={"interval_seconds": interval})
