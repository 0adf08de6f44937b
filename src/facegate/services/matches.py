"""Match history: what identify saw, filterable by person, time and unknown-only; crops for review."""

from __future__ import annotations

from datetime import datetime

from facegate.errors import NotFound
from facegate.services import enroll as enroll_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, EnrollResult, MatchesPage, MatchPublic, Upload
from facegate.store import repository
from facegate.store.models import MatchRecord


def _to_public(record: MatchRecord, names: dict[str, str]) -> MatchPublic:
    return MatchPublic(
        id=record.id,
        request_id=record.request_id,
        source=record.source,
        created_at=record.created_at,
        person_id=record.person_id,
        name=names.get(record.person_id) if record.person_id else None,
        distance=record.distance,
        confidence=record.confidence,
        threshold=record.threshold,
        box=BoxPublic(left=record.left, top=record.top, width=record.width, height=record.height),
        quality=record.quality,
        candidates=record.candidates or [],
        has_crop=record.crop_key is not None,
    )


def list_matches(
    rt: Runtime,
    *,
    limit: int,
    offset: int,
    person_id: str | None = None,
    unknown_only: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MatchesPage:
    with rt.db.session() as session:
        rows, total = repository.list_matches(
            session,
            limit=limit,
            offset=offset,
            person_id=person_id,
            unknown_only=unknown_only,
            since=since,
            until=until,
        )
        names = repository.names_of(session, sorted({r.person_id for r in rows if r.person_id}))
        return MatchesPage(items=[_to_public(r, names) for r in rows], total=total)


def get_match(rt: Runtime, match_id: int) -> MatchPublic:
    with rt.db.session() as session:
        record = repository.get_match(session, match_id)
        if record is None:
            raise NotFound(f"No match with id {match_id}.", code="match_not_found")
        names = repository.names_of(session, [record.person_id] if record.person_id else [])
        return _to_public(record, names)


def match_crop(rt: Runtime, match_id: int) -> bytes:
    with rt.db.session() as session:
        record = repository.get_match(session, match_id)
        if record is None:
            raise NotFound(f"No match with id {match_id}.", code="match_not_found")
        key = record.crop_key
    if key is None:
        raise NotFound(f"Match {match_id} has no stored crop.", code="crop_not_found")
    return rt.blobs.get(key)


def enroll_from_match(
    rt: Runtime, match_id: int, *, name: str | None = None, person_id: str | None = None
) -> EnrollResult:
    """Enroll the face kept for a match (typically an unknown) as a new person or onto an existing one, and
    label that match with the person."""
    crop = match_crop(rt, match_id)
    result = enroll_service.enroll(rt, [Upload(f"match-{match_id}.jpg", crop)], name=name, person_id=person_id)
    with rt.db.session() as session:
        record = repository.get_match(session, match_id)
        if record is not None:  # deleted meanwhile: the enrollment stands on its own
            record.person_id = result.person.id
    return result
