"""store.repository: the queries services rely on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from facegate.store import repository
from facegate.store.database import Database
from facegate.store.models import FaceRecord, ImageRecord, MatchRecord, Person

T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'facegate.db'}")
    database.open()
    with database.session() as session:
        for pid, name in (("a", "Ann Smith"), ("b", "Bob Jones")):
            session.add(Person(id=pid, name=name, external_id=f"ext-{pid}"))
            session.flush()  # images refer to people by key only, so the person row must exist first
            image = ImageRecord(
                person_id=pid, blob_key=f"images/{pid}/1.jpg", sha256=pid * 64, filename="1.jpg", width=1, height=1
            )
            session.add(
                FaceRecord(
                    person_id=pid,
                    image=image,
                    left=0,
                    top=0,
                    width=1,
                    height=1,
                    quality=1.0,
                    detector_score=1.0,
                    sharpness=1.0,
                    engine="opencv" if pid == "a" else "dlib",
                    model_version="v1",
                    embedding=b"\x00" * 8,
                )
            )
        for minute, pid in ((0, "a"), (1, None), (2, "b"), (3, "a")):
            session.add(
                MatchRecord(
                    request_id=f"r{minute}",
                    source="api",
                    created_at=T0 + timedelta(minutes=minute),
                    person_id=pid,
                    threshold=0.5,
                    left=0,
                    top=0,
                    width=1,
                    height=1,
                    quality=1.0,
                    engine="opencv",
                    model_version="v1",
                    candidates=[],
                    crop_key=f"crops/r{minute}.jpg",
                )
            )
    yield database
    database.close()


def test_counts(db: Database) -> None:
    with db.session() as session:
        assert repository.counts(session) == {
            "people": 2,
            "faces": 2,
            "images": 2,
            "matches": 4,
            "unknown_matches": 1,
        }


def test_people_lookups(db: Database) -> None:
    with db.session() as session:
        assert repository.get_person_by_external_id(session, "ext-b").id == "b"  # type: ignore[union-attr]
        assert repository.get_person_by_external_id(session, "nope") is None
        assert repository.face_counts(session, ["a", "b", "z"]) == {"a": 1, "b": 1}
        assert repository.face_counts(session, []) == {}
        assert repository.names_of(session, ["a"]) == {"a": "Ann Smith"}
        assert repository.image_exists(session, "a", "a" * 64)
        assert not repository.image_exists(session, "b", "a" * 64)
        people, total = repository.list_people(session, limit=10, offset=0, name="JONES")
        assert ([p.id for p in people], total) == (["b"], 1)


def test_matches_filters(db: Database) -> None:
    def ids(**filters: object) -> list[str]:
        defaults: dict[str, object] = {"person_id": None, "unknown_only": False, "since": None, "until": None}
        with db.session() as session:
            rows, _ = repository.list_matches(session, limit=10, offset=0, **(defaults | filters))
            return [r.request_id for r in rows]

    assert ids() == ["r3", "r2", "r1", "r0"]
    assert ids(person_id="a") == ["r3", "r0"]
    assert ids(unknown_only=True) == ["r1"]
    assert ids(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)) == ["r2", "r1"]


def test_blob_keys(db: Database) -> None:
    with db.session() as session:
        assert sorted(repository.blob_keys_of_person(session, "a")) == [
            "crops/r0.jpg",
            "crops/r3.jpg",
            "images/a/1.jpg",
        ]
        assert len(repository.all_blob_keys(session)) == 2 + 4


def test_iter_embeddings_of_one_engine(db: Database) -> None:
    with db.session() as session:
        rows = list(repository.iter_embeddings(session, "opencv", "v1"))
    assert [(person, len(blob)) for _, person, blob in rows] == [("a", 8)]


def test_delete_person_removes_their_rows_only(db: Database) -> None:
    with db.session() as session:
        repository.delete_person(session, session.get_one(Person, "a"))
    with db.session() as session:
        assert session.scalars(select(Person.id)).all() == ["b"]
        for model in (ImageRecord, FaceRecord):
            assert session.scalars(select(model.person_id)).all() == ["b"]
        assert sorted(session.scalars(select(MatchRecord.request_id))) == ["r1", "r2"]
