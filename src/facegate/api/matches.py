from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Response, status

from facegate.api.auth import EnrollKey, ReadKey
from facegate.api.deps import MAX_ID, RuntimeDep, UtcDateTime
from facegate.services import audit, rejections
from facegate.services import matches as matches_service
from facegate.services.schemas import EnrollResult, MatchesPage, MatchPublic

router = APIRouter(prefix="/api/v1/matches", tags=["matches"])

MatchId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=MatchesPage, summary="Match history, newest first")
def list_matches(
    rt: RuntimeDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    person_id: str | None = None,
    unknown: Annotated[bool, Query(description="Only faces that matched nobody")] = False,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
) -> MatchesPage:
    return matches_service.list_matches(
        rt, limit=limit, offset=offset, person_id=person_id, unknown_only=unknown, since=since, until=until
    )


@router.get("/{match_id}", response_model=MatchPublic)
def get_match(rt: RuntimeDep, principal: ReadKey, match_id: MatchId) -> MatchPublic:
    return matches_service.get_match(rt, match_id)


@router.get(
    "/{match_id}/crop",
    response_class=Response,
    summary="The face crop kept for this match (JPEG)",
    responses={200: {"content": {"image/jpeg": {}}}},
)
def match_crop(rt: RuntimeDep, principal: ReadKey, match_id: MatchId) -> Response:
    return Response(matches_service.match_crop(rt, match_id), media_type="image/jpeg")


@router.post(
    "/{match_id}/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollResult,
    summary="Enroll the face kept for this match as a new person (name) or onto one (person_id)",
)
def enroll_from_match(
    rt: RuntimeDep,
    principal: EnrollKey,
    match_id: MatchId,
    name: Annotated[
        str | None, Form(max_length=200, description="A new person's name", examples=["New Colleague"])
    ] = None,
    person_id: Annotated[str | None, Form(max_length=36, description="Or add the face to this person")] = None,
) -> EnrollResult:
    result = matches_service.enroll_from_match(rt, match_id, name=name, person_id=person_id)
    audit.record(rt, principal.actor, "match_enrolled", result.person.id, match_id=match_id)
    return result


@router.post(
    "/{match_id}/reject",
    response_model=MatchPublic,
    summary="Not this person: the face of this match is not the person it was matched to",
)
def reject_match(rt: RuntimeDep, principal: EnrollKey, match_id: MatchId) -> MatchPublic:
    """The match becomes an unknown face (`rejected`: true) and its face is kept as a rejected face of the
    person: a later face closer to it than to the person is not given the person's name (identify flags the
    person `rejected_lookalike` in its candidates). 409 `match_not_named` when the match names nobody."""
    match, person_id = rejections.reject_match(rt, match_id)
    audit.record(rt, principal.actor, "match_rejected", person_id, match_id=match_id)
    return match
