"""store.sql_suggestions: the lock that lets one process of several on a store group unknown faces."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from facegate.store.database import GROUPING_LOCK
from tests.store.conftest import OpenRepository


def test_one_store_leads_grouping_at_a_time(pg_url: str, open_repo: OpenRepository) -> None:
    first, second = open_repo(pg_url), open_repo(pg_url)
    assert first.suggestions.lead_grouping()
    assert first.suggestions.lead_grouping()  # still held: asking again keeps it
    assert not second.suggestions.lead_grouping()
    first.suggestions.close()  # a replica shutting down gives it up
    assert second.suggestions.lead_grouping()
    assert not first.suggestions.lead_grouping()
    second.close()  # closing the store gives it up too
    assert first.suggestions.lead_grouping()


def test_the_lock_goes_with_a_dead_connection(pg_url: str, open_repo: OpenRepository) -> None:
    """A leader whose database connection dies (server restart, network) loses the lock; another takes over, and
    the old leader finds out at its next try."""
    first, second = open_repo(pg_url), open_repo(pg_url)
    assert first.suggestions.lead_grouping()
    with second.db.engine.connect() as conn:
        pid = conn.execute(
            text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = :key"),
            {"key": GROUPING_LOCK},
        ).scalar_one()
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
    deadline = time.monotonic() + 10
    while not second.suggestions.lead_grouping():  # the server ends the killed session a moment later
        assert time.monotonic() < deadline, "the lock stayed with a terminated session"
        time.sleep(0.05)
    assert not first.suggestions.lead_grouping()


def test_sqlite_is_one_process(tmp_path: Path, open_repo: OpenRepository) -> None:
    repo = open_repo(f"sqlite:///{tmp_path}/facegate.db")
    assert repo.suggestions.lead_grouping()
    assert open_repo(f"sqlite:///{tmp_path}/facegate.db").suggestions.lead_grouping()
