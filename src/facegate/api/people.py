from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from facegate.api.deps import RuntimeDep
from facegate.services import people as people_service
from facegate.services.schemas import PeoplePage, PersonPublic, PersonUpdate

router = APIRouter(prefix="/api/v1/people", tags=["people"])


@router.get("", response_model=PeoplePage)
def list_people(
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    name: Annotated[str | None, Query(max_length=200, description="Substring, case-insensitive")] = None,
) -> PeoplePage:
    return people_service.list_people(rt, limit=limit, offset=offset, name=name)


@router.get("/{person_id}", response_model=PersonPublic)
def get_person(rt: RuntimeDep, person_id: str) -> PersonPublic:
    return people_service.get_person(rt, person_id)


@router.patch("/{person_id}", response_model=PersonPublic)
def update_person(rt: RuntimeDep, person_id: str, update: PersonUpdate) -> PersonPublic:
    return people_service.update_person(rt, person_id, update)


@router.delete(
    "/{person_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a person with all faces, embeddings, index entries, images and match history",
)
def delete_person(rt: RuntimeDep, person_id: str) -> Response:
    people_service.delete_person(rt, person_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
