"""Video streams on the SQL store (SQLite and PostgreSQL): the StreamStore protocol."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from facegate.errors import Conflict, NotFound
from facegate.store.base import StreamCreate, StreamRow, StreamStatus
from facegate.store.database import Database
from facegate.store.models import StreamRecord, new_id


def _stream_row(r: StreamRecord) -> StreamRow:
    status = None
    if r.state is not None and r.status_at is not None:
        status = StreamStatus(
            state=r.state,
            fps=r.fps or 0.0,
            lag_seconds=r.lag_seconds or 0.0,
            frames=r.frames,
            dropped_frames=r.dropped_frames,
            error=r.error,
            tracks=list(r.tracks or []),
            worker=r.worker or "",
            at=r.status_at,
        )
    return StreamRow(
        id=r.id,
        name=r.name,
        source=r.source,
        options=dict(r.options or {}),
        enabled=r.enabled,
        created_at=r.created_at,
        status=status,
    )


class SQLStreamStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, stream: StreamCreate) -> StreamRow:
        record = StreamRecord(
            id=new_id(), name=stream.name, source=stream.source, options=dict(stream.options), enabled=True
        )
        try:
            # The unique name decides races between two adds, not a read before the insert.
            with self._db.session() as session:
                session.add(record)
                session.flush()
                return _stream_row(record)
        except IntegrityError as exc:
            raise Conflict(f"A stream named {stream.name!r} exists already.", code="stream_name_taken") from exc

    def get(self, stream_id: str) -> StreamRow | None:
        with self._db.session() as session:
            record = session.get(StreamRecord, stream_id)
            return _stream_row(record) if record else None

    def list_streams(self) -> list[StreamRow]:
        with self._db.session() as session:
            query = select(StreamRecord).order_by(StreamRecord.created_at, StreamRecord.id)
            return [_stream_row(r) for r in session.scalars(query)]

    def delete(self, stream_id: str) -> None:
        with self._db.session() as session:
            record = session.get(StreamRecord, stream_id)
            if record is None:
                raise NotFound(f"No stream with id {stream_id}.", code="stream_not_found")
            session.delete(record)

    def set_enabled(self, stream_id: str, enabled: bool) -> StreamRow:
        with self._db.session() as session:
            record = session.get(StreamRecord, stream_id)
            if record is None:
                raise NotFound(f"No stream with id {stream_id}.", code="stream_not_found")
            record.enabled = enabled
            session.flush()
            return _stream_row(record)

    def report(self, stream_id: str, status: StreamStatus) -> bool:
        with self._db.session() as session:
            result = session.execute(
                update(StreamRecord)
                .where(StreamRecord.id == stream_id)
                .values(
                    state=status.state,
                    fps=status.fps,
                    lag_seconds=status.lag_seconds,
                    frames=status.frames,
                    dropped_frames=status.dropped_frames,
                    error=status.error[:1000] if status.error else None,
                    tracks=list(status.tracks),
                    worker=status.worker[:200],
                    status_at=status.at,
                )
            )
            return bool(getattr(result, "rowcount", 0))
