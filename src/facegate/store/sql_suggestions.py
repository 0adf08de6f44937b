"""Suggested people on the SQL store (SQLite and PostgreSQL): the SuggestionStore protocol.

One process groups (`lead_grouping`): on PostgreSQL the replica holding a session-level advisory lock, taken on a
connection of its own and kept until `close` or until that connection dies (then another replica takes it at its
next try); SQLite is one process's file.

Memberships point at match-history rows with ON DELETE CASCADE (SQLite runs with foreign_keys on), so a retention
purge or a person's deletion takes the faces out of their groups in the same statement; a group left empty is
not listed, and the next grouping write deletes it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from facegate.errors import NotFound
from facegate.store.base import GroupingUpdate, SuggestionFilter, SuggestionRow, UnknownFace
from facegate.store.database import GROUPING_LOCK, Database
from facegate.store.models import MatchRecord, Person, StoreMeta, SuggestionFaceRecord, SuggestionRecord

GENERATION = "suggestions_generation"
CHUNK = 500


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _summary() -> Select[str, int, int, datetime, datetime]:
    """Per group: faces, distinct requests, first and last seen."""
    return (
        select(
            SuggestionFaceRecord.suggestion_id,
            func.count().label("size"),
            func.count(func.distinct(MatchRecord.request_id)).label("sightings"),
            func.min(MatchRecord.created_at).label("first_seen"),
            func.max(MatchRecord.created_at).label("last_seen"),
        )
        .join(MatchRecord, MatchRecord.id == SuggestionFaceRecord.match_id)
        .group_by(SuggestionFaceRecord.suggestion_id)
    )


def _as_utc(value: datetime) -> datetime:
    # Aggregates bypass the column type: SQLite hands back naive text-parsed datetimes (or strings).
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SQLSuggestionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._leading: Connection | None = None  # holds GROUPING_LOCK
        self._lead_lock = threading.Lock()

    def lead_grouping(self) -> bool:
        if self.db.dialect != "postgresql":
            return True
        with self._lead_lock:
            if self._leading is not None:
                try:
                    self._leading.execute(text("SELECT 1"))
                    return True
                except SQLAlchemyError:  # the connection died, and the lock with it: try again below
                    self._drop_lead()
            # Autocommit: the lock outlives transactions, and the connection never sits idle in one.
            conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": GROUPING_LOCK}).scalar())
            except BaseException:
                conn.invalidate()
                conn.close()
                raise
            if not taken:
                conn.close()
                return False
            self._leading = conn
            return True

    def close(self) -> None:
        """Give the grouping lock up (for another replica to take)."""
        with self._lead_lock:
            self._drop_lead()

    def _drop_lead(self) -> None:
        if self._leading is None:
            return
        # Unlocked at once for the next taker (the server ends a closed connection's session a moment later); and
        # the connection is discarded, not pooled, so that no lock can stay with whoever checks it out next.
        with contextlib.suppress(SQLAlchemyError):  # a dead connection: its session, and the lock, are gone
            self._leading.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": GROUPING_LOCK})
        with contextlib.suppress(SQLAlchemyError):
            self._leading.invalidate()
        self._leading.close()
        self._leading = None

    def unknown_faces(
        self, engine: str, model_version: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[UnknownFace]:
        query = (
            select(
                MatchRecord.id,
                MatchRecord.request_id,
                MatchRecord.embedding,
                SuggestionFaceRecord.suggestion_id,
                SuggestionRecord.dismissed_at,
            )
            .outerjoin(SuggestionFaceRecord, SuggestionFaceRecord.match_id == MatchRecord.id)
            .outerjoin(SuggestionRecord, SuggestionRecord.id == SuggestionFaceRecord.suggestion_id)
            .where(
                MatchRecord.id > after_id,
                MatchRecord.person_id.is_(None),
                MatchRecord.engine == engine,
                MatchRecord.model_version == model_version,
                MatchRecord.embedding.is_not(None),
            )
            .order_by(MatchRecord.id)
            .limit(limit)
        )
        with self.db.session() as session:
            return [
                UnknownFace(int(i), r, bytes(e), s, d is not None)
                for i, r, e, s, d in session.execute(query)
                if e is not None
            ]

    def save_grouping(self, grouping: GroupingUpdate) -> int:
        changes = dict(grouping.changes)
        now = datetime.now(UTC)
        with self.db.session() as session:
            ids = sorted(changes)
            dismissed = select(SuggestionRecord.id).where(SuggestionRecord.dismissed_at.is_not(None))
            current: dict[int, str] = {}
            unknown: set[int] = set()
            for chunk in _chunks(ids):
                current.update(
                    (int(m), s)
                    for m, s in session.execute(
                        select(SuggestionFaceRecord.match_id, SuggestionFaceRecord.suggestion_id).where(
                            SuggestionFaceRecord.match_id.in_(chunk)
                        )
                    )
                )
                unknown.update(
                    int(m)
                    for m in session.scalars(
                        select(MatchRecord.id).where(MatchRecord.id.in_(chunk), MatchRecord.person_id.is_(None))
                    )
                )
            frozen = set(session.scalars(dismissed.where(SuggestionRecord.id.in_(set(current.values())))))
            # A face in a dismissed group stays there, whatever a grouping computed meanwhile says.
            moves = {m: s for m, s in changes.items() if current.get(m) not in frozen and current.get(m) != s}
            wanted = {s for s in moves.values() if s is not None}
            existing = set(session.scalars(select(SuggestionRecord.id).where(SuggestionRecord.id.in_(wanted))))
            session.add_all(
                SuggestionRecord(
                    id=s, engine=grouping.engine, model_version=grouping.model_version, created_at=now, updated_at=now
                )
                for s in sorted(wanted - existing)
            )
            session.flush()
            leaving = sorted(m for m in moves if m in current)
            for chunk in _chunks(leaving):
                session.execute(delete(SuggestionFaceRecord).where(SuggestionFaceRecord.match_id.in_(chunk)))
            session.add_all(
                SuggestionFaceRecord(match_id=m, suggestion_id=s)
                for m, s in sorted(moves.items())
                if s is not None and m in unknown
            )
            touched = wanted | {current[m] for m in leaving}
            if touched:
                session.execute(update(SuggestionRecord).where(SuggestionRecord.id.in_(touched)).values(updated_at=now))
            self._drop_empty(session)
            return self._bump(session)

    @staticmethod
    def _drop_empty(session: Session) -> None:
        """Faces named since (relabelled in history, merged) leave their groups; then empty groups go."""
        named = (
            select(MatchRecord.id)
            .where(MatchRecord.id == SuggestionFaceRecord.match_id, MatchRecord.person_id.is_not(None))
            .exists()
        )
        session.execute(delete(SuggestionFaceRecord).where(named))
        has_faces = select(SuggestionFaceRecord.match_id).where(
            SuggestionFaceRecord.suggestion_id == SuggestionRecord.id
        )
        session.execute(delete(SuggestionRecord).where(SuggestionRecord.dismissed_at.is_(None), ~has_faces.exists()))

    @staticmethod
    def _bump(session: Session) -> int:
        row = session.get(StoreMeta, GENERATION, with_for_update=True)
        if row is None:
            session.add(StoreMeta(key=GENERATION, value="1"))
            return 1
        row.value = str(int(row.value) + 1)
        return int(row.value)

    def generation(self) -> int:
        with self.db.session() as session:
            row = session.get(StoreMeta, GENERATION)
            return int(row.value) if row is not None else 0

    def list_suggestions(self, query: SuggestionFilter, *, limit: int, offset: int) -> tuple[list[SuggestionRow], int]:
        summary = _summary().subquery()
        statement = (
            select(SuggestionRecord, summary)
            .join(summary, summary.c.suggestion_id == SuggestionRecord.id)
            .where(
                SuggestionRecord.engine == query.engine,
                SuggestionRecord.model_version == query.model_version,
                SuggestionRecord.dismissed_at.is_(None),
                summary.c.size >= query.min_faces,
                summary.c.sightings >= query.min_sightings,
            )
        )
        if query.unnotified_only:
            statement = statement.where(SuggestionRecord.notified_at.is_(None))
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.execute(
                statement.order_by(summary.c.last_seen.desc(), SuggestionRecord.id).limit(limit).offset(offset)
            ).all()
            sources = self._sources(session, [r[0].id for r in rows])
            return [self._row(r[0], r, sources.get(r[0].id, [])) for r in rows], int(total)

    def get(self, suggestion_id: str) -> SuggestionRow | None:
        summary = _summary().where(SuggestionFaceRecord.suggestion_id == suggestion_id).subquery()
        with self.db.session() as session:
            row = session.execute(
                select(SuggestionRecord, summary).join(summary, summary.c.suggestion_id == SuggestionRecord.id)
            ).first()
            if row is None:
                return None
            return self._row(row[0], row, self._sources(session, [suggestion_id]).get(suggestion_id, []))

    @staticmethod
    def _row(record: SuggestionRecord, summary: Any, sources: list[str]) -> SuggestionRow:
        return SuggestionRow(
            id=record.id,
            size=int(summary.size),
            sightings=int(summary.sightings),
            first_seen=_as_utc(summary.first_seen),
            last_seen=_as_utc(summary.last_seen),
            sources=sources,
            created_at=record.created_at,
            dismissed_at=record.dismissed_at,
            notified_at=record.notified_at,
        )

    @staticmethod
    def _sources(session: Session, ids: Sequence[str]) -> dict[str, list[str]]:
        if not ids:
            return {}
        rows = session.execute(
            select(SuggestionFaceRecord.suggestion_id, MatchRecord.source)
            .join(MatchRecord, MatchRecord.id == SuggestionFaceRecord.match_id)
            .where(SuggestionFaceRecord.suggestion_id.in_(list(ids)))
            .distinct()
        )
        found: dict[str, list[str]] = {}
        for suggestion_id, source in rows:
            found.setdefault(suggestion_id, []).append(source)
        return {k: sorted(v) for k, v in found.items()}

    def members(self, suggestion_id: str) -> list[int]:
        with self.db.session() as session:
            return [
                int(m)
                for m in session.scalars(
                    select(SuggestionFaceRecord.match_id)
                    .where(SuggestionFaceRecord.suggestion_id == suggestion_id)
                    .order_by(SuggestionFaceRecord.match_id)
                )
            ]

    def embeddings(self, match_ids: Collection[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        with self.db.session() as session:
            for chunk in _chunks(sorted(set(match_ids))):
                query = select(MatchRecord.id, MatchRecord.embedding).where(
                    MatchRecord.id.in_(chunk), MatchRecord.embedding.is_not(None)
                )
                found.update((int(i), bytes(e)) for i, e in session.execute(query) if e is not None)
        return found

    def dismiss(self, suggestion_id: str, at: datetime) -> bool:
        with self.db.session() as session:
            record = session.get(SuggestionRecord, suggestion_id, with_for_update=True)
            if record is None or not self._has_faces(session, suggestion_id):
                return False
            if record.dismissed_at is None:
                record.dismissed_at = at
                record.updated_at = at
            self._bump(session)
            return True

    @staticmethod
    def _has_faces(session: Session, suggestion_id: str) -> bool:
        query = select(SuggestionFaceRecord.match_id).where(SuggestionFaceRecord.suggestion_id == suggestion_id)
        return session.scalars(query.limit(1)).first() is not None

    def mark_notified(self, suggestion_id: str, at: datetime) -> bool:
        with self.db.session() as session:
            result = session.execute(
                update(SuggestionRecord)
                .where(SuggestionRecord.id == suggestion_id, SuggestionRecord.notified_at.is_(None))
                .values(notified_at=at)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def resolve(self, suggestion_id: str, person_id: str) -> int:
        try:
            with self.db.session() as session:
                if session.get(Person, person_id, with_for_update=True) is None:
                    raise NotFound(f"No person with id {person_id}.", code="person_not_found")
                record = session.get(SuggestionRecord, suggestion_id, with_for_update=True)
                if record is None:
                    raise NotFound(f"No suggestion with id {suggestion_id}.", code="suggestion_not_found")
                members = select(SuggestionFaceRecord.match_id).where(
                    SuggestionFaceRecord.suggestion_id == suggestion_id
                )
                result = session.execute(
                    update(MatchRecord)
                    .where(MatchRecord.id.in_(members), MatchRecord.person_id.is_(None))
                    .values(person_id=person_id)
                )
                session.execute(delete(SuggestionFaceRecord).where(SuggestionFaceRecord.suggestion_id == suggestion_id))
                session.delete(record)
                self._bump(session)
                return int(result.rowcount or 0)  # type: ignore[attr-defined]
        except IntegrityError as exc:  # the person was deleted meanwhile
            raise NotFound(f"No person with id {person_id}.", code="person_not_found") from exc
