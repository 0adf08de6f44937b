"""store.models: UTC timestamps survive SQLite, ids are UUIDs, face ids are never reused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from facegate.store.database import Database
from facegate.store.models import FaceRecord, ImageRecord, Person, new_id


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'facegate.db'}")
    database.open()
    yield database
    database.close()


def _face(person_id: str, image: ImageRecord) -> FaceRecord:
    return FaceRecord(
        person_id=person_id,
        image=image,
        left=0,
        top=0,
        width=1,
        height=1,
        quality=1.0,
        detector_score=1.0,
        sharpness=1.0,
        engine="e",
        model_version="v",
        embedding=b"\x00" * 4,
    )


def test_new_id_is_a_uuid() -> None:
    assert uuid.UUID(new_id()).version == 4
    assert new_id() != new_id()


def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    written = datetime(2024, 5, 6, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    with db.session() as session:
        session.add(Person(id="p", name="n", created_at=written))
    with db.session() as session:
        person = session.get_one(Person, "p")
        assert person.created_at == written
        assert person.created_at.utcoffset() == timedelta(0)
        assert person.updated_at.tzinfo is not None
        assert abs(person.updated_at - datetime.now(UTC)) < timedelta(minutes=1)
        assert person.attributes == {}


def test_face_ids_are_not_reused_after_delete(db: Database) -> None:
    with db.session() as session:
        session.add(Person(id="p", name="n"))
        session.flush()
        image = ImageRecord(person_id="p", blob_key="k1", sha256="0" * 64, filename="a", width=1, height=1)
        session.add(_face("p", image))
    with db.session() as session:
        first = session.scalars(select(FaceRecord.id)).one()
        session.execute(delete(FaceRecord))
    with db.session() as session:
        image = ImageRecord(person_id="p", blob_key="k2", sha256="1" * 64, filename="b", width=1, height=1)
        session.add(_face("p", image))
    with db.session() as session:
        assert session.scalars(select(FaceRecord.id)).one() > first
