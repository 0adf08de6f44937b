"""Queries and writes on the SQL store. Every function takes the caller's session (one transaction)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, cast, delete, func, select
from sqlalchemy.orm import Session

from facegate.store.models import FaceRecord, ImageRecord, MatchRecord, Person


def get_person(session: Session, person_id: str) -> Person | None:
    return session.get(Person, person_id)


def get_person_by_external_id(session: Session, external_id: str) -> Person | None:
    return session.scalars(select(Person).where(Person.external_id == external_id)).first()


def find_person_by_name(session: Session, name: str) -> Person | None:
    return session.scalars(select(Person).where(Person.name == name).order_by(Person.created_at)).first()


def list_people(session: Session, *, limit: int, offset: int, name: str | None) -> tuple[list[Person], int]:
    query = select(Person)
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Person.name.ilike(f"%{escaped}%", escape="\\"))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Person.created_at, Person.id).limit(limit).offset(offset)).all()
    return list(rows), total


def face_counts(session: Session, person_ids: list[str]) -> dict[str, int]:
    if not person_ids:
        return {}
    rows = session.execute(
        select(FaceRecord.person_id, func.count())
        .where(FaceRecord.person_id.in_(person_ids))
        .group_by(FaceRecord.person_id)
    ).all()
    return {pid: count for pid, count in rows}


def image_exists(session: Session, person_id: str, sha256: str) -> bool:
    query = select(ImageRecord.id).where(ImageRecord.person_id == person_id, ImageRecord.sha256 == sha256)
    return session.scalars(query).first() is not None


def blob_keys_of_person(session: Session, person_id: str) -> list[str]:
    images = session.scalars(select(ImageRecord.blob_key).where(ImageRecord.person_id == person_id)).all()
    crops = session.scalars(
        select(MatchRecord.crop_key).where(MatchRecord.person_id == person_id, MatchRecord.crop_key.is_not(None))
    ).all()
    return [*images, *(c for c in crops if c)]


def face_ids_of_person(session: Session, person_id: str) -> list[int]:
    return list(session.scalars(select(FaceRecord.id).where(FaceRecord.person_id == person_id)).all())


def delete_person(session: Session, person: Person) -> None:
    # Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite only honours with a pragma.
    session.execute(delete(MatchRecord).where(MatchRecord.person_id == person.id))
    session.execute(delete(FaceRecord).where(FaceRecord.person_id == person.id))
    session.execute(delete(ImageRecord).where(ImageRecord.person_id == person.id))
    # Other faces' history may list this person among their candidates: scrub those mentions too.
    mentions = select(MatchRecord).where(cast(MatchRecord.candidates, String).contains(person.id))
    for record in session.scalars(mentions):
        record.candidates = [c for c in record.candidates if c.get("person_id") != person.id]
    session.delete(person)


def iter_embeddings(
    session: Session, engine: str, model_version: str, *, ids: Collection[int] | None = None
) -> Iterator[tuple[int, str, bytes]]:
    """(face id, person id, embedding bytes) of one engine's faces, all of them or those in `ids`."""
    query = select(FaceRecord.id, FaceRecord.person_id, FaceRecord.embedding).where(
        FaceRecord.engine == engine, FaceRecord.model_version == model_version
    )
    if ids is not None:
        query = query.where(FaceRecord.id.in_(ids))
    for face_id, person_id, embedding in session.execute(
        query.order_by(FaceRecord.id).execution_options(yield_per=2000)
    ):
        yield int(face_id), str(person_id), bytes(embedding)


def embedding_stats(session: Session, engine: str, model_version: str) -> tuple[int, int | None]:
    """How many faces one engine has, and the highest face id: a cheap fingerprint of the set."""
    count, highest = session.execute(
        select(func.count(), func.max(FaceRecord.id)).where(
            FaceRecord.engine == engine, FaceRecord.model_version == model_version
        )
    ).one()
    return int(count), (int(highest) if highest is not None else None)


def face_ids(session: Session, engine: str, model_version: str) -> set[int]:
    query = select(FaceRecord.id).where(FaceRecord.engine == engine, FaceRecord.model_version == model_version)
    return set(session.scalars(query).all())


def names_of(session: Session, person_ids: list[str]) -> dict[str, str]:
    if not person_ids:
        return {}
    rows = session.execute(select(Person.id, Person.name).where(Person.id.in_(person_ids))).all()
    return {pid: name for pid, name in rows}


def matches_query(
    *,
    person_id: str | None,
    unknown_only: bool,
    since: datetime | None,
    until: datetime | None,
) -> Select[MatchRecord]:
    query = select(MatchRecord)
    if person_id:
        query = query.where(MatchRecord.person_id == person_id)
    if unknown_only:
        query = query.where(MatchRecord.person_id.is_(None))
    if since:
        query = query.where(MatchRecord.created_at >= since)
    if until:
        query = query.where(MatchRecord.created_at < until)
    return query


def list_matches(session: Session, *, limit: int, offset: int, **filters: Any) -> tuple[list[MatchRecord], int]:
    query = matches_query(**filters)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(MatchRecord.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def get_match(session: Session, match_id: int) -> MatchRecord | None:
    return session.get(MatchRecord, match_id)


def all_blob_keys(session: Session) -> set[str]:
    images = session.scalars(select(ImageRecord.blob_key)).all()
    crops = session.scalars(select(MatchRecord.crop_key).where(MatchRecord.crop_key.is_not(None))).all()
    return {*images, *(c for c in crops if c)}


def counts(session: Session) -> dict[str, int]:
    return {
        "people": session.scalar(select(func.count()).select_from(Person)) or 0,
        "faces": session.scalar(select(func.count()).select_from(FaceRecord)) or 0,
        "images": session.scalar(select(func.count()).select_from(ImageRecord)) or 0,
        "matches": session.scalar(select(func.count()).select_from(MatchRecord)) or 0,
        "unknown_matches": session.scalar(
            select(func.count()).select_from(MatchRecord).where(MatchRecord.person_id.is_(None))
        )
        or 0,
    }
