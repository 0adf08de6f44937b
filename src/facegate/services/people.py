"""People: list, get, update, delete (delete purges faces, index entries and stored images)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facegate.errors import Conflict, InvalidInput, NotFound
from facegate.services.runtime import Runtime
from facegate.services.schemas import PeoplePage, PersonPublic, PersonUpdate
from facegate.store import repository
from facegate.store.models import Person

log = logging.getLogger(__name__)


def to_public(person: Person, face_count: int) -> PersonPublic:
    return PersonPublic(
        id=person.id,
        name=person.name,
        external_id=person.external_id,
        metadata=person.attributes or {},
        face_count=face_count,
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


def require_person(session: Session, person_id: str) -> Person:
    person = repository.get_person(session, person_id)
    if person is None:
        raise NotFound(f"No person with id {person_id}.", code="person_not_found")
    return person


def public_person(session: Session, person: Person) -> PersonPublic:
    return to_public(person, repository.face_counts(session, [person.id]).get(person.id, 0))


def list_people(rt: Runtime, *, limit: int, offset: int, name: str | None) -> PeoplePage:
    with rt.db.session() as session:
        people, total = repository.list_people(session, limit=limit, offset=offset, name=name)
        counts = repository.face_counts(session, [p.id for p in people])
        return PeoplePage(items=[to_public(p, counts.get(p.id, 0)) for p in people], total=total)


def get_person(rt: Runtime, person_id: str) -> PersonPublic:
    with rt.db.session() as session:
        return public_person(session, require_person(session, person_id))


def update_person(rt: Runtime, person_id: str, update: PersonUpdate) -> PersonPublic:
    try:
        with rt.db.session() as session:
            person = require_person(session, person_id)
            fields = update.model_fields_set
            if "name" in fields:
                if update.name is None:
                    raise InvalidInput("name cannot be null; every person has a name.", code="invalid_name")
                person.name = update.name
            if "external_id" in fields:
                person.external_id = update.external_id
            if "metadata" in fields:
                person.attributes = update.metadata or {}
            session.flush()
            return public_person(session, person)
    except IntegrityError as exc:
        raise Conflict(
            f"external_id {update.external_id!r} belongs to another person.", code="external_id_taken"
        ) from exc


def delete_person(rt: Runtime, person_id: str) -> None:
    """Rows go first, in one transaction; then index entries and blobs, which cannot be rolled back."""
    with rt.db.session() as session:
        person = require_person(session, person_id)
        face_ids = repository.face_ids_of_person(session, person_id)
        keys = repository.blob_keys_of_person(session, person_id)
        repository.delete_person(session, person)
    rt.index.remove(face_ids)
    rt.telemetry.index_size.set(len(rt.index))
    for key in keys:
        try:
            rt.blobs.delete(key)
        except OSError:  # left for the orphan sweep at next start
            log.exception("could not delete blob %s", key)
