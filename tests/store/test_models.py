"""store.models: ids are UUIDs, UTC timestamps survive both backends, face ids are never reused, embeddings are
BLOBs on SQLite and pgvector values on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from sqlalchemy import func, select, text

from facegate.store.base import NewFace, NewImage, PersonCreate
from facegate.store.models import FaceRecord, Person, new_id
from facegate.store.repository import SQLRepository


def _image(engine: str = "opencv") -> NewImage:
    image_id = new_id()
    face = NewFace(
        left=0,
        top=0,
        width=1,
        height=1,
        quality=1.0,
        detector_score=1.0,
        sharpness=1.0,
        engine=engine,
        model_version="v",
        embedding=np.arange(128, dtype="<f4").tobytes(),
    )
    return NewImage(image_id, f"images/{image_id}", uuid.uuid4().hex * 2, None, 1, 1, [face])


def test_new_id_is_a_uuid4() -> None:
    assert uuid.UUID(new_id()).version == 4
    assert new_id() != new_id()


def test_timestamps_come_back_timezone_aware_utc(repo: SQLRepository) -> None:
    written = datetime(2024, 5, 6, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    with repo.db.session() as session:
        session.add(Person(id="p", name="n", created_at=written))
    with repo.db.session() as session:
        person = session.get_one(Person, "p")
        assert person.created_at == written
        assert person.created_at.utcoffset() == timedelta(0)
        assert person.created_at.hour == 12
        assert person.updated_at.tzinfo is not None
        assert abs(person.updated_at - datetime.now(UTC)) < timedelta(minutes=1)
        assert person.attributes == {}
    row, faces = repo.save_enrollment(PersonCreate("Ann"), [_image()])
    for stamp in (row.created_at, row.updated_at, faces[0].created_at):
        assert stamp.utcoffset() == timedelta(0)


def test_face_ids_are_never_reused(repo: SQLRepository) -> None:
    """Face ids label vectors in every replica's index: a new face must never take a deleted one's id, even when
    the deleted face had the highest id (SQLite reuses it without AUTOINCREMENT)."""
    ann, (first, second) = repo.save_enrollment(PersonCreate("Ann"), [_image(), _image()])
    repo.delete_face(ann.id, second.id)
    repo.delete_face(ann.id, first.id)
    _, (third,) = repo.save_enrollment(ann.id, [_image()])
    assert third.id > second.id
    repo.delete_person(ann.id)
    _, (fourth,) = repo.save_enrollment(PersonCreate("Bob"), [_image()])
    assert fourth.id > third.id


def test_embedding_storage_per_backend(repo: SQLRepository) -> None:
    repo.save_enrollment(PersonCreate("Ann"), [_image()])
    with repo.db.session() as session:
        assert session.scalars(select(FaceRecord.embedding)).one() == np.arange(128, dtype="<f4").tobytes()
        if repo.db.dialect == "postgresql":
            stored = session.execute(text("SELECT embedding::text FROM faces")).scalar_one()
            assert stored.startswith("[0,1,2,") and stored.endswith(",127]")
        else:
            assert session.scalar(select(func.typeof(text("embedding"))).select_from(FaceRecord)) == "blob"
            assert session.scalar(select(func.length(text("embedding"))).select_from(FaceRecord)) == 128 * 4
