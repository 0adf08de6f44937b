"""SQLAlchemy 2 models: people, their images and face embeddings, and match history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the backend stores (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class EmbeddingType(TypeDecorator[bytes]):
    """float32 little-endian bytes in Python; a pgvector `vector` on PostgreSQL (so pgvector can search the
    faces table in place), a BLOB elsewhere."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is not None and dialect.name == "postgresql":
            return np.frombuffer(value, dtype="<f4")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is not None and dialect.name == "postgresql":
            return np.asarray(value, dtype="<f4").tobytes()
        return value  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class Person(Base):
    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    # "metadata" is reserved by SQLAlchemy's declarative base, hence the attribute name.
    attributes: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    faces: Mapped[list[FaceRecord]] = relationship(back_populates="person", passive_deletes=True)


class ImageRecord(Base):
    """An enrolled photo, kept as a blob so faces can be re-embedded when the engine changes."""

    __tablename__ = "images"
    # The same photo is enrolled once per person; the constraint, not a check before the insert, decides races.
    __table_args__ = (UniqueConstraint("person_id", "sha256", name="uq_images_person_sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    blob_key: Mapped[str] = mapped_column(String(300), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str | None] = mapped_column(String(300))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FaceRecord(Base):
    __tablename__ = "faces"
    # AUTOINCREMENT: a deleted face id is never reused, so it can serve as the vector-index label.
    __table_args__ = (Index("ix_faces_engine", "engine", "model_version"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    left: Mapped[int] = mapped_column(Integer)
    top: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float] = mapped_column(Float)
    detector_score: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    engine: Mapped[str] = mapped_column(String(50))
    model_version: Mapped[str] = mapped_column(String(100))
    embedding: Mapped[bytes] = mapped_column(EmbeddingType)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Added by identify's safe auto-enrollment rather than by a user (listed with the flag, removable).
    auto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    person: Mapped[Person] = relationship(back_populates="faces")
    # Lets the unit of work insert an image before the faces found in it.
    image: Mapped[ImageRecord] = relationship()


class MatchRecord(Base):
    """One face seen by identify: matched or unknown, with its crop so an unknown can be enrolled later."""

    __tablename__ = "matches"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(36), index=True)
    source: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    distance: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    left: Mapped[int] = mapped_column(Integer)
    top: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float] = mapped_column(Float)
    engine: Mapped[str] = mapped_column(String(50))
    model_version: Mapped[str] = mapped_column(String(100))
    # [{"person_id", "distance"}]: names are looked up when read, so deleting a person rewrites nothing here.
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    crop_key: Mapped[str | None] = mapped_column(String(300), index=True)
    # The face's embedding (engine, model_version above), for finding past sightings of a person named later.
    # Deferred: history listings never load it.
    embedding: Mapped[bytes | None] = mapped_column(EmbeddingType, nullable=True, deferred=True)
    # "Not this person": the person link is cleared then, the rejection row keeps whom it was not.
    rejected_at: Mapped[datetime | None] = mapped_column()
    # An unknown sighting named afterwards by relabelling (retro-search at a stricter bar).
    relabelled_at: Mapped[datetime | None] = mapped_column()


class RejectionRecord(Base):
    """A face a user said is not this person ("not this person" on a match): identify does not give the person's
    name to a later face closer to this one than to the person's own faces. Keeps the embedding itself, so it
    outlives a retention purge of the history row."""

    __tablename__ = "rejections"
    __table_args__ = (Index("ix_rejections_engine", "engine", "model_version"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    match_id: Mapped[int | None] = mapped_column(ForeignKey("matches.id", ondelete="SET NULL"), index=True)
    engine: Mapped[str] = mapped_column(String(50))
    model_version: Mapped[str] = mapped_column(String(100))
    embedding: Mapped[bytes] = mapped_column(EmbeddingType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SuggestionRecord(Base):
    """A group of recurring unknown faces of one engine's space: a suggested person until enrolled or dismissed.
    A dismissed group keeps its faces, so new faces of the same stranger join it rather than a new suggestion."""

    __tablename__ = "suggestions"
    __table_args__ = (Index("ix_suggestions_engine", "engine", "model_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    engine: Mapped[str] = mapped_column(String(50))
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    dismissed_at: Mapped[datetime | None] = mapped_column()
    # When `unknown_person_recurring` was published for this group (once).
    notified_at: Mapped[datetime | None] = mapped_column()


class SuggestionFaceRecord(Base):
    """A match-history face in a group. Deleting the face (retention purge, person delete) drops the membership."""

    __tablename__ = "suggestion_faces"

    match_id: Mapped[int] = mapped_column(ForeignKey("matches.id", ondelete="CASCADE"), primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(ForeignKey("suggestions.id", ondelete="CASCADE"), index=True)


class StreamRecord(Base):
    """A video stream to run (name, source, sampling options) and the live status the process running it writes
    every few seconds; any API replica reads the status from here, whichever worker runs the stream."""

    __tablename__ = "streams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(2000))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str | None] = mapped_column(String(20))
    fps: Mapped[float | None] = mapped_column(Float)
    lag_seconds: Mapped[float | None] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer, default=0)
    dropped_frames: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1000))
    tracks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    worker: Mapped[str | None] = mapped_column(String(200))
    status_at: Mapped[datetime | None] = mapped_column()


class FaceChangeRecord(Base):
    """The change log replicas follow to keep an in-process index in step: one row per face added or removed,
    numbered in commit order (writers serialize on a lock while appending, see SQLRepository)."""

    __tablename__ = "face_changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    op: Mapped[str] = mapped_column(String(10))
    face_id: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[str] = mapped_column(String(36))
    engine: Mapped[str] = mapped_column(String(50))
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class PendingBlob(Base):
    """A blob between its write and the commit of the row that points at it, or between the delete of that
    row and the blob's own delete. Whatever is left here after a crash is settled by the sweep."""

    __tablename__ = "pending_blobs"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class StoreMeta(Base):
    """Small named values of the store itself (e.g. how far the change log was trimmed)."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))


class ApiKeyRecord(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    prefix: Mapped[str] = mapped_column(String(20))
    # HMAC-SHA256 of the key, hex: the key itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuditRecord(Base):
    __tablename__ = "audit_log"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(50), index=True)
    key_id: Mapped[str | None] = mapped_column(String(36), index=True)
    address: Mapped[str | None] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
