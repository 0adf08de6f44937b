"""API keys and the audit log on the SQL store (SQLite and PostgreSQL): the KeyStore and AuditLog protocols."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from facegate.errors import NotFound
from facegate.store.base import AuditEntry, AuditFilter, AuditRow, KeyCreate, KeyRow
from facegate.store.database import Database
from facegate.store.models import ApiKeyRecord, AuditRecord, StoreMeta, new_id

# A row in store_meta that only the first key created on an empty store may insert: the primary key makes
# "create the first admin key" atomic across processes and replicas starting together.
BOOTSTRAPPED = "keys_bootstrapped"


# Every request's statement, built once (see repository._NAMES).
_FIND_BY_HASH = select(ApiKeyRecord.__table__).where(ApiKeyRecord.key_hash == bindparam("key_hash"))


def _key_row(r: ApiKeyRecord | Row[Any]) -> KeyRow:
    return KeyRow(
        id=r.id,
        name=r.name,
        scopes=list(r.scopes),
        prefix=r.prefix,
        created_at=r.created_at,
        last_used_at=r.last_used_at,
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
    )


class SQLKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, key: KeyCreate, *, only_if_none: bool = False) -> KeyRow | None:
        record = ApiKeyRecord(
            id=new_id(),
            name=key.name,
            scopes=list(key.scopes),
            prefix=key.prefix,
            key_hash=key.key_hash,
            expires_at=key.expires_at,
        )
        try:
            with self._db.session() as session:
                if only_if_none:
                    if session.scalar(select(func.count()).select_from(ApiKeyRecord)):
                        return None
                    session.add(StoreMeta(key=BOOTSTRAPPED, value=record.id))
                    session.flush()
                session.add(record)
                session.flush()
                return _key_row(record)
        except IntegrityError:
            if only_if_none:  # another process bootstrapped first
                return None
            raise

    def find_by_hash(self, key_hash: str) -> KeyRow | None:
        # Every request's lookup: a plain connection, no ORM session (see Database.transaction).
        with self._db.transaction() as conn:
            record = conn.execute(_FIND_BY_HASH, {"key_hash": key_hash}).first()
            return _key_row(record) if record else None

    def list_keys(self) -> list[KeyRow]:
        with self._db.session() as session:
            query = select(ApiKeyRecord).order_by(ApiKeyRecord.created_at, ApiKeyRecord.id)
            return [_key_row(r) for r in session.scalars(query)]

    def get(self, key_id: str) -> KeyRow | None:
        with self._db.session() as session:
            record = session.get(ApiKeyRecord, key_id)
            return _key_row(record) if record else None

    def revoke(self, key_id: str, at: datetime) -> KeyRow:
        with self._db.session() as session:
            record = session.get(ApiKeyRecord, key_id)
            if record is None:
                raise NotFound(f"No API key with id {key_id}.", code="key_not_found")
            if record.revoked_at is None:
                record.revoked_at = at
            session.flush()
            return _key_row(record)

    def touch(self, key_id: str, at: datetime) -> None:
        with self._db.session() as session:
            session.execute(update(ApiKeyRecord).where(ApiKeyRecord.id == key_id).values(last_used_at=at))


class SQLAuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, entry: AuditEntry) -> None:
        with self._db.session() as session:
            session.add(
                AuditRecord(
                    at=entry.at,
                    action=entry.action,
                    key_id=entry.key_id,
                    address=entry.address,
                    target=entry.target,
                    detail=dict(entry.detail),
                )
            )

    def query(self, query: AuditFilter, *, limit: int, offset: int) -> tuple[list[AuditRow], int]:
        statement = select(AuditRecord)
        if query.action:
            statement = statement.where(AuditRecord.action == query.action)
        if query.key_id:
            statement = statement.where(AuditRecord.key_id == query.key_id)
        if query.since:
            statement = statement.where(AuditRecord.at >= query.since)
        if query.until:
            statement = statement.where(AuditRecord.at < query.until)
        with self._db.session() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.scalars(statement.order_by(AuditRecord.id.desc()).limit(limit).offset(offset))
            return [
                AuditRow(
                    id=r.id,
                    at=r.at,
                    action=r.action,
                    key_id=r.key_id,
                    address=r.address,
                    target=r.target,
                    detail=dict(r.detail or {}),
                )
                for r in rows
            ], total
