"""Match history: what identify saw, filterable by person, time and unknown-only; crops for review; purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from facegate.errors import NotFound
from facegate.services import enroll as enroll_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, Candidate, EnrollResult, MatchesPage, MatchPublic, Upload
from facegate.store.base import MatchFilter, MatchRow
from facegate.vision.engine import confidence

# Matches purged per transaction, so a large purge never holds a long lock.
PURGE_BATCH = 1000


def _to_public(record: MatchRow, names: dict[str, str]) -> MatchPublic:
    # Names are read now: a renamed person shows their new name, a deleted one drops out of the candidates.
    candidates = [
        Candidate(
            person_id=c.person_id,
            name=names[c.person_id],
            distance=c.distance,
            confidence=round(confidence(c.distance, record.threshold), 4),
        )
        for c in record.candidates
        if c.person_id in names
    ]
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
        candidates=candidates,
        has_crop=record.crop_key is not None,
        rejected=record.rejected_at is not None,
        relabelled=record.relabelled_at is not None,
    )


def to_public(rt: Runtime, rows: list[MatchRow]) -> list[MatchPublic]:
    names = _names(rt, rows)
    return [_to_public(r, names) for r in rows]


def _names(rt: Runtime, rows: list[MatchRow]) -> dict[str, str]:
    ids = {r.person_id for r in rows if r.person_id} | {c.person_id for r in rows for c in r.candidates}
    return rt.store.names_of(ids)


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
    query = MatchFilter(person_id=person_id, unknown_only=unknown_only, since=since, until=until)
    rows, total = rt.store.list_matches(query, limit=limit, offset=offset)
    names = _names(rt, rows)
    return MatchesPage(items=[_to_public(r, names) for r in rows], total=total)


def _require_match(rt: Runtime, match_id: int) -> MatchRow:
    record = rt.store.get_match(match_id)
    if record is None:
        raise NotFound(f"No match with id {match_id}.", code="match_not_found")
    return record


def get_match(rt: Runtime, match_id: int) -> MatchPublic:
    record = _require_match(rt, match_id)
    return _to_public(record, _names(rt, [record]))


def match_crop(rt: Runtime, match_id: int) -> bytes:
    key = _require_match(rt, match_id).crop_key
    if key is None:
        raise NotFound(f"Match {match_id} has no stored crop.", code="crop_not_found")
    try:
        data = rt.blobs.get(key)
    except NotFound:
        data = b""
    if not data:  # lost to a power failure (crops are not fsynced by default: IdentifySettings.durable_crops)
        raise NotFound(f"The crop of match {match_id} was lost.", code="crop_not_found")
    return data


def enroll_from_match(
    rt: Runtime, match_id: int, *, name: str | None = None, person_id: str | None = None
) -> EnrollResult:
    """Enroll the face kept for a match (typically an unknown) as a new person or onto an existing one, and
    label that match with the person."""
    crop = match_crop(rt, match_id)
    result = enroll_service.enroll(rt, [Upload(f"match-{match_id}.jpg", crop)], name=name, person_id=person_id)
    rt.store.label_match(match_id, result.person.id)  # False if deleted meanwhile: the enrollment stands alone
    return result


def purge_history(rt: Runtime, older_than_days: float) -> int:
    """Delete match history (rows and crops) older than `older_than_days`; returns how many matches."""
    before = datetime.now(UTC) - timedelta(days=older_than_days)
    purged = 0
    while True:
        removed = rt.store.purge_matches(before, limit=PURGE_BATCH)
        rt.discard_blobs(removed.blob_keys)
        purged += removed.rows
        if removed.rows < PURGE_BATCH:
            return purged
