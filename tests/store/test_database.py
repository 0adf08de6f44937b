"""store.database: connecting makes no schema, migrations do (once, even when racing), sessions are transactions;
SQLite pragmas; pgvector indexes on PostgreSQL; a server database refuses to start on an old schema."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from facegate.config import SQLDatabaseSettings
from facegate.errors import Unavailable
from facegate.store.database import Database
from facegate.store.models import Base, ImageRecord, Person
from facegate.store.repository import SQLRepository

OpenRepo = Callable[..., SQLRepository]
PRAGMAS = ("foreign_keys", "journal_mode", "synchronous", "busy_timeout")
TABLES = {"people", "images", "faces", "matches", "face_changes", "pending_blobs", "store_meta"}


@pytest.fixture
def db(store_url: str) -> Iterator[Database]:
    """An opened Database on an empty database: no schema yet."""
    database = Database(store_url)
    database.open()
    yield database
    database.close()


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_open_makes_no_schema(db: Database) -> None:
    assert db.ping()
    assert _tables(db) == set()
    assert db.schema_revision() is None


def test_migrate_creates_the_schema_once(db: Database) -> None:
    db.migrate()
    head = Database.head_revision()
    assert head is not None and head >= "0002"  # 0002: change log, pending blobs, pgvector indexes
    assert db.schema_revision() == head
    assert TABLES | {"alembic_version"} <= _tables(db)
    with db.session() as session:
        session.add(Person(id="p", name="kept"))

    db.migrate()  # nothing left to do: no error, data untouched

    assert db.schema_revision() == head
    with db.session() as session:
        assert session.scalars(select(Person.name)).all() == ["kept"]


def test_schema_matches_the_models(db: Database) -> None:
    db.migrate()
    inspector = inspect(db.engine)
    for table in Base.metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}, table.name
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("images")}
    assert ("person_id", "sha256") in uniques
    foreign = {(fk["referred_table"], tuple(fk["constrained_columns"])) for fk in inspector.get_foreign_keys("faces")}
    assert foreign == {("people", ("person_id",)), ("images", ("image_id",))}


def test_foreign_keys_are_enforced(db: Database) -> None:
    db.migrate()
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(ImageRecord(person_id="nobody", blob_key="k", sha256="0" * 64, filename="a", width=1, height=1))


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    db.migrate()
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


def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'facegate.db'}")
    db.open()  # creates the missing folder
    try:
        with db.engine.connect() as conn:
            pragmas = {name: conn.execute(text(f"PRAGMA {name}")).scalar() for name in PRAGMAS}
        # synchronous 1 is NORMAL
        assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "synchronous": 1, "busy_timeout": 10000}
    finally:
        db.close()


def test_session_before_open_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Database(f"sqlite:///{tmp_path / 'x.db'}").session():
        pass


def test_constructors_do_no_io(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'later' / 'x.db'}"
    Database(url)
    SQLRepository(SQLDatabaseSettings(url=url), url)
    assert not (tmp_path / "later").exists()


# PostgreSQL ------------------------------------------------------------------------------------------------


def test_pgvector_columns_and_hnsw_indexes(pg_url: str, open_repo: OpenRepo) -> None:
    repo = open_repo(pg_url)
    with repo.db.engine.connect() as conn:
        udt = conn.execute(
            text(
                "SELECT udt_name FROM information_schema.columns"
                " WHERE table_name = 'faces' AND column_name = 'embedding'"
            )
        ).scalar()
        rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'faces'"))
        indexes = {name: definition for name, definition in rows}
    assert udt == "vector"
    for engine, ops in (("opencv", "vector_cosine_ops"), ("dlib", "vector_l2_ops")):
        definition = indexes[f"ix_faces_embedding_{engine}"]
        assert "USING hnsw" in definition and ops in definition and f"'{engine}'" in definition


def test_racing_migrations_both_succeed(pg_url: str) -> None:
    databases = [Database(pg_url) for _ in range(2)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(databases))

    def migrate(db: Database) -> None:
        try:
            start.wait()
            db.migrate()
        except BaseException as exc:
            errors.append(exc)

    for db in databases:
        db.open()
    try:
        # Daemon threads and a deadline: without the lock the two can block each other for good (seen: one
        # waiting on the other's uncommitted CREATE TABLE), and that must fail the test, not hang it.
        threads = [threading.Thread(target=migrate, args=(db,), daemon=True) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "the migrations deadlocked"
        assert errors == []
        assert all(db.schema_revision() == Database.head_revision() for db in databases)
        assert _tables(databases[0]) >= TABLES
    finally:
        for db in databases:
            db.close()


def test_a_server_database_with_an_old_schema_refuses_to_open(pg_url: str, open_repo: OpenRepo) -> None:
    for auto_migrate in (False, None):  # None: only SQLite migrates itself
        with pytest.raises(Unavailable) as info:
            open_repo(pg_url, auto_migrate=auto_migrate)
        assert info.value.code == "schema_out_of_date"
        assert "facegate migrate" in info.value.message
    migrator = SQLRepository(SQLDatabaseSettings(url=pg_url, auto_migrate=False), pg_url)
    migrator.migrate()  # what `facegate migrate` does: no open() needed
    migrator.close()
    repo = open_repo(pg_url, auto_migrate=False)
    assert repo.ping() and repo.counts()["people"] == 0


def test_sqlite_migrates_itself_by_default(tmp_path: Path, open_repo: OpenRepo) -> None:
    url = f"sqlite:///{tmp_path / 'facegate.db'}"
    repo = open_repo(url, auto_migrate=None)
    assert repo.db.schema_revision() == Database.head_revision()


def test_sqlite_tables_keep_autoincrement_after_every_migration(tmp_path: Path) -> None:
    """Face and match ids label index entries and history: a migration that copies a table on SQLite (alembic's
    batch mode) silently drops AUTOINCREMENT, and deleted ids would then be reused."""
    db = Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.open()
    db.migrate()
    with db.engine.connect() as conn:
        schema = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
    db.close()
    for table in ("faces", "matches", "rejections", "audit_log", "face_changes"):
        assert "AUTOINCREMENT" in schema[table], table
