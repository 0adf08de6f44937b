"""Suggested people: groups of recurring unknown faces, to enroll as a person or dismiss."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from facegate.api.auth import EnrollKey, ReadKey
from facegate.api.deps import MAX_ID, RuntimeDep
from facegate.services import audit
from facegate.services import suggestions as suggestions_service
from facegate.services.schemas import SuggestionDetail, SuggestionEnroll, SuggestionEnrolled, SuggestionsPage

router = APIRouter(prefix="/api/v1/suggestions", tags=["suggestions"])

SuggestionId = Annotated[str, Path(min_length=1, max_length=36)]


@router.get("", response_model=SuggestionsPage, summary="People seen again and again but never enrolled")
def list_suggestions(
    rt: RuntimeDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> SuggestionsPage:
    return suggestions_service.list_suggestions(rt, rt.engine.info, limit=limit, offset=offset)


@router.get("/{suggestion_id}", response_model=SuggestionDetail, summary="A suggestion with every face in it")
def get_suggestion(rt: RuntimeDep, principal: ReadKey, suggestion_id: SuggestionId) -> SuggestionDetail:
    return suggestions_service.get_suggestion(rt, rt.engine.info, suggestion_id)


@router.post(
    "/{suggestion_id}/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=SuggestionEnrolled,
    summary="Enroll a suggestion's best faces as a new person (name) or onto one (person_id)",
)
def enroll_suggestion(
    rt: RuntimeDep, principal: EnrollKey, suggestion_id: SuggestionId, body: SuggestionEnroll
) -> SuggestionEnrolled:
    """Its faces in match history become sightings of that person, and the suggestion goes."""
    result = suggestions_service.enroll(rt, suggestion_id, name=body.name, person_id=body.person_id)
    audit.record(
        rt,
        principal.actor,
        "suggestion_enrolled",
        result.person.id,
        suggestion_id=suggestion_id,
        faces_added=result.faces_added,
    )
    return result


@router.delete(
    "/{suggestion_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Dismiss a suggestion: its faces, and later faces of the same stranger, are not suggested again",
)
def dismiss_suggestion(rt: RuntimeDep, principal: EnrollKey, suggestion_id: SuggestionId) -> Response:
    suggestions_service.dismiss(rt, suggestion_id)
    audit.record(rt, principal.actor, "suggestion_dismissed", suggestion_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
