"""Engine, sessions and migrations for the SQL store (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, sessionmaker

from facegate.errors import InvalidInput

# pg_advisory_xact_lock keys: one for migrations, one that orders change-log appends.
MIGRATION_LOCK = 0x66676D31  # "fgm1"
CHANGE_LOG_LOCK = 0x6667636C  # "fgcl"
# A session-level pg_try_advisory_lock key: held by the one replica that groups unknown faces.
GROUPING_LOCK = 0x66676770  # "fggp"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL stays consistent through crashes and skips an fsync per commit; a power cut may lose
    # the last commits, not corrupt the file.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


@contextmanager
def _client_values() -> Iterator[None]:
    try:
        yield
    except DataError as exc:
        # A value the database cannot hold, e.g. a NUL character in text on PostgreSQL: the client's input.
        raise InvalidInput(
            "A value in the request cannot be stored (e.g. a NUL character in text).", code="invalid_value"
        ) from exc


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("facegate.store") / "migrations"))
    return cfg


class Database:
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self._echo = echo
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_dialect().name

    def open(self) -> None:
        """Connect (lazily: the first session opens the first connection). No schema changes here."""
        options: dict[str, Any] = {"echo": self._echo}
        if self.dialect == "sqlite":
            # A file, not a server: a connection cannot go stale, so no ping before each use.
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            # A server may have closed an idle connection (restart, failover): ping before use.
            options |= {"pool_size": self._pool_size, "max_overflow": self._pool_size, "pool_pre_ping": True}
        engine = create_engine(self.url, **options)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Apply every pending migration. On PostgreSQL an advisory lock makes processes that migrate at the
        same time run one after the other (the second finds nothing left to do)."""
        cfg = _alembic_config()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @staticmethod
    def head_revision() -> str | None:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("Database.open() was not called.")
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any exception."""
        if self._sessions is None:
            raise RuntimeError("Database.open() was not called.")
        with _client_values(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success, rolled back on any exception: for the statements
        of every identify (key lookup, names, history rows), where the ORM's session and unit of work cost
        more CPU than the SQL itself."""
        with _client_values(), self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessions = None
