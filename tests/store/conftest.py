"""Store fixtures: every store test runs on SQLite (a temporary file) and on a real PostgreSQL with pgvector."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facegate.config import SQLDatabaseSettings
from facegate.store.repository import SQLRepository

OpenRepository = Callable[..., SQLRepository]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, empty database: a SQLite file, or a fresh database on the session's PostgreSQL (which
    only starts when a PostgreSQL case runs)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'facegate.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def open_repo() -> Iterator[OpenRepository]:
    """Opens SQLRepository objects (`open_repo(url, auto_migrate=...)`) and closes them after the test."""
    opened: list[SQLRepository] = []

    def _open(url: str, *, auto_migrate: bool | None = True) -> SQLRepository:
        repository = SQLRepository(SQLDatabaseSettings(url=url, auto_migrate=auto_migrate), url)
        opened.append(repository)
        repository.open()
        return repository

    yield _open
    for repository in opened:
        repository.close()


@pytest.fixture
def repo(store_url: str, open_repo: OpenRepository) -> SQLRepository:
    """An opened, migrated SQLRepository on `store_url`."""
    return open_repo(store_url)
