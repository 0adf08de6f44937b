from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Response, status

from facegate.api.deps import MAX_ID, RuntimeDep
from facegate.services import matches as matches_service
from facegate.services.schemas import EnrollResult, MatchesPage, MatchPublic

router = APIRouter(prefix="/api/v1/matches", tags=["matches"])


@router.get("", response_model=MatchesPage, summary="Match history, newest first")
def list_matches(
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    person_id: str | None = None,
    unknown: Annotated[bool, Query(description="Only faces that matched nobody")] = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MatchesPage:
    return matches_service.list_matches(
        rt, limit=limit, offset=offset, person_id=person_id, unknown_only=unknown, since=since, until=until
    )


@router.get("/{match_id}", response_model=MatchPublic)
def get_match(rt: RuntimeDep, match_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> MatchPublic:
    return matches_service.get_match(rt, match_id)


@router.get(
    "/{match_id}/crop",
    response_class=Response,
    summary="The face crop kept for this match (JPEG)",
    responses={200: {"content": {"image/jpeg": {}}}},
)
def match_crop(rt: RuntimeDep, match_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
    return Response(matches_service.match_crop(rt, match_id), media_type="image/jpeg")


@router.post(
    "/{match_id}/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollResult,
    summary="Enroll the face kept for this match as a new person (name) or onto one (person_id)",
)
def enroll_from_match(
    rt: RuntimeDep,
    match_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    name: Annotated[str | None, Form(max_length=200)] = None,
    person_id: Annotated[str | None, Form()] = None,
) -> EnrollResult:
    return matches_service.enroll_from_match(rt, match_id, name=name, person_id=person_id)
