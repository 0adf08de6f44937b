from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from facegate.api.auth import EnrollKey, ReadKey
from facegate.api.deps import MAX_ID, RuntimeDep
from facegate.api.openapi import IMAGE_TYPES
from facegate.services import audit
from facegate.services import people as people_service
from facegate.services import sightings as sightings_service
from facegate.services.schemas import (
    FacesPage,
    PeoplePage,
    PersonMerge,
    PersonPublic,
    PersonSplit,
    PersonUpdate,
    SightingsPage,
)

router = APIRouter(prefix="/api/v1/people", tags=["people"])

PersonId = Annotated[str, Path(min_length=1, max_length=36)]
FaceId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=PeoplePage)
def list_people(
    rt: RuntimeDep,
    principal: ReadKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    name: Annotated[str | None, Query(max_length=200, description="Substring, case-insensitive")] = None,
) -> PeoplePage:
    return people_service.list_people(rt, limit=limit, offset=offset, name=name)


@router.get("/{person_id}", response_model=PersonPublic)
def get_person(rt: RuntimeDep, principal: ReadKey, person_id: PersonId) -> PersonPublic:
    return people_service.get_person(rt, person_id)


@router.get("/{person_id}/sightings", response_model=SightingsPage)
def person_sightings(
    rt: RuntimeDep,
    principal: ReadKey,
    person_id: PersonId,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SightingsPage:
    """Past unknown faces in match history that are this person by identify's rule (nearest first): who was
    seen before they were enrolled, or while they were not recognised."""
    return sightings_service.person_sightings(rt, person_id, limit=limit)


@router.patch("/{person_id}", response_model=PersonPublic)
def update_person(rt: RuntimeDep, principal: EnrollKey, person_id: PersonId, update: PersonUpdate) -> PersonPublic:
    person = people_service.update_person(rt, person_id, update)
    audit.record(rt, principal.actor, "person_updated", person_id, fields=sorted(update.model_fields_set))
    return person


@router.post("/{person_id}/merge", response_model=PersonPublic)
def merge_person(rt: RuntimeDep, principal: EnrollKey, person_id: PersonId, merge: PersonMerge) -> PersonPublic:
    """Merge another person into this one (one person enrolled twice): their photos, faces and match history
    move here, photos both had are kept once, and the other person is deleted."""
    person = people_service.merge_people(rt, person_id, merge.from_person_id)
    audit.record(rt, principal.actor, "person_merged", person_id, merged=merge.from_person_id)
    return person


@router.post("/{person_id}/split", response_model=PersonPublic)
def split_person(rt: RuntimeDep, principal: EnrollKey, person_id: PersonId, split: PersonSplit) -> PersonPublic:
    """Move chosen faces out of this person (a wrong merge, mislabelled photos) to a new person (`name`) or an
    existing one (`person_id`). Faces move with their photo: every face of a chosen face's photo moves (the
    fused engine keeps two per photo). Returns the person they moved to; match history stays as it was."""
    person = people_service.split_person(rt, person_id, split)
    audit.record(rt, principal.actor, "person_split", person_id, to=person.id, face_ids=sorted(split.face_ids))
    return person


@router.delete(
    "/{person_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a person with all faces, embeddings, index entries, images and match history",
)
def delete_person(rt: RuntimeDep, principal: EnrollKey, person_id: PersonId) -> Response:
    people_service.delete_person(rt, person_id)
    audit.record(rt, principal.actor, "person_deleted", person_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{person_id}/faces", response_model=FacesPage, summary="A person's enrolled faces")
def list_faces(rt: RuntimeDep, principal: ReadKey, person_id: PersonId) -> FacesPage:
    faces = people_service.list_faces(rt, person_id)
    return FacesPage(items=faces, total=len(faces))


@router.get(
    "/{person_id}/faces/{face_id}/image",
    response_class=Response,
    summary="The enrolled photo a face was taken from, as uploaded",
    responses={200: {"content": {media_type: {} for media_type in IMAGE_TYPES}}},
)
def face_image(rt: RuntimeDep, principal: ReadKey, person_id: PersonId, face_id: FaceId) -> Response:
    data, media_type = people_service.face_image(rt, person_id, face_id)
    return Response(data, media_type=media_type)


@router.delete(
    "/{person_id}/faces/{face_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one face: its embeddings, index entries and photo",
)
def delete_face(rt: RuntimeDep, principal: EnrollKey, person_id: PersonId, face_id: FaceId) -> Response:
    people_service.delete_face(rt, person_id, face_id)
    audit.record(rt, principal.actor, "face_deleted", person_id, face_id=face_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
