"""store.database: migrations create the schema; SQLite enforces foreign keys; sessions are transactions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from facegate.store.database import Database
from facegate.store.models import FaceRecord, ImageRecord, Person


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'sub' / 'facegate.db'}")
    database.open()
    yield database
    database.close()


def test_migrations_create_the_schema(db: Database) -> None:
    inspector = inspect(db.engine)
    assert {"people", "images", "faces", "matches", "alembic_version"} <= set(inspector.get_table_names())
    columns = {c["name"] for c in inspector.get_columns("faces")}
    assert {"id", "person_id", "image_id", "embedding", "engine", "model_version"} <= columns
    assert "metadata" in {c["name"] for c in inspector.get_columns("people")}
    foreign = {(fk["referred_table"], tuple(fk["constrained_columns"])) for fk in inspector.get_foreign_keys("faces")}
    assert foreign == {("people", ("person_id",)), ("images", ("image_id",))}
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"


def test_schema_matches_the_models(db: Database) -> None:
    inspector = inspect(db.engine)
    for model in (Person, ImageRecord, FaceRecord):
        table = model.__table__
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}


def test_migrating_again_is_harmless(db: Database) -> None:
    db.migrate()
    reopened = Database(db.url)
    reopened.open()
    reopened.close()


def test_foreign_keys_are_enforced(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(
            ImageRecord(person_id="no-such-person", blob_key="k", sha256="0" * 64, filename="a", width=1, height=1)
        )


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with db.session() as session:
        session.add(Person(id="p1", name="kept"))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Person(id="p2", name="rolled back"))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalars(select(Person.id)).all() == ["p1"]


def test_ping_and_close(db: Database) -> None:
    assert db.ping()
    db.close()
    assert not db.ping()
    with pytest.raises(RuntimeError):
        db.engine  # noqa: B018


def test_session_before_open_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Database(f"sqlite:///{tmp_path / 'x.db'}").session():
        pass


def test_constructor_does_no_io(tmp_path: Path) -> None:
    Database(f"sqlite:///{tmp_path / 'later' / 'x.db'}")
    assert not (tmp_path / "later").exists()
