"""People: list, get, update, delete (delete purges faces, index entries, stored images and history); a
person's faces: list, photo, delete."""

from __future__ import annotations

import mimetypes

from facegate.errors import InvalidInput, NotFound
from facegate.services.runtime import StoreRuntime
from facegate.services.schemas import BoxPublic, FaceDetail, PeoplePage, PersonPublic, PersonSplit, PersonUpdate
from facegate.store.base import FaceRow, PersonCreate, PersonRow, Removed


def to_public(person: PersonRow) -> PersonPublic:
    return PersonPublic(
        id=person.id,
        name=person.name,
        external_id=person.external_id,
        metadata=person.metadata,
        face_count=person.face_count,
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


def require_person(rt: StoreRuntime, person_id: str) -> PersonRow:
    person = rt.store.get_person(person_id)
    if person is None:
        raise NotFound(f"No person with id {person_id}.", code="person_not_found")
    return person


def list_people(rt: StoreRuntime, *, limit: int, offset: int, name: str | None) -> PeoplePage:
    people, total = rt.store.list_people(limit=limit, offset=offset, name=name)
    return PeoplePage(items=[to_public(p) for p in people], total=total)


def get_person(rt: StoreRuntime, person_id: str) -> PersonPublic:
    return to_public(require_person(rt, person_id))


def update_person(rt: StoreRuntime, person_id: str, update: PersonUpdate) -> PersonPublic:
    fields = update.model_fields_set
    if "name" in fields and update.name is None:
        raise InvalidInput("name cannot be null; every person has a name.", code="invalid_name")
    changes = {field: getattr(update, field) for field in fields}
    if changes.get("external_id") == "":  # as at enrollment: an empty external id is no external id
        changes["external_id"] = None
    return to_public(rt.store.update_person(person_id, changes))


def _forget(rt: StoreRuntime, removed: Removed) -> None:
    """After rows are gone: index entries (via the change log) and blobs, which cannot be rolled back."""
    rt.sync_index_after_write()
    rt.discard_blobs(removed.blob_keys)


def delete_person(rt: StoreRuntime, person_id: str) -> None:
    _forget(rt, rt.store.delete_person(person_id))


def merge_people(rt: StoreRuntime, into: str, source: str) -> PersonPublic:
    """One person enrolled twice (or split by mistake) becomes one: `source`'s photos, faces and match history
    move to `into`; `source` is gone. Photos both had are kept once."""
    if into == source:
        raise InvalidInput("A person cannot be merged into themselves.", code="same_person")
    person, removed = rt.store.merge_people(into, source)
    _forget(rt, removed)
    return to_public(person)


def split_person(rt: StoreRuntime, person_id: str, split: PersonSplit) -> PersonPublic:
    """Faces wrongly given to a person (a wrong merge, a mislabelled photo) move out to a new person (`name`) or
    another one (`person_id`), photos and all, in one transaction; the person the faces moved to is returned.
    Match history stays where it is: past rows were decided by the gallery as it was then."""
    if (split.name is None) == (split.person_id is None):
        raise InvalidInput("Give either name (new person) or person_id (existing one).", code="name_or_person_id")
    if split.name is not None and not split.name.strip():
        raise InvalidInput("name must not be empty.", code="invalid_name")
    if split.person_id == person_id:
        raise InvalidInput("Faces cannot be split out to the person they belong to.", code="same_person")
    target: PersonCreate | str = split.person_id if split.person_id is not None else PersonCreate(name=split.name or "")
    person, removed = rt.store.split_person(person_id, split.face_ids, target)
    _forget(rt, removed)
    return to_public(person)


def _face_detail(face: FaceRow) -> FaceDetail:
    return FaceDetail(
        id=face.id,
        image_id=face.image_id,
        box=BoxPublic(left=face.left, top=face.top, width=face.width, height=face.height),
        quality=face.quality,
        detector_score=face.detector_score,
        sharpness=face.sharpness,
        engine=face.engine,
        model_version=face.model_version,
        created_at=face.created_at,
        auto=face.auto,
    )


def list_faces(rt: StoreRuntime, person_id: str) -> list[FaceDetail]:
    return [_face_detail(f) for f in rt.store.list_faces(person_id)]


def face_image(rt: StoreRuntime, person_id: str, face_id: int) -> tuple[bytes, str]:
    """The enrolled photo a face was taken from, and its media type. The type comes from the stored key, whose
    extension enrollment took from the decoded format, never from the client's file name (a JPEG uploaded as
    "x.html" must not be served as text/html)."""
    _, image = rt.store.get_face(person_id, face_id)
    media_type = mimetypes.guess_type(image.blob_key)[0] or "application/octet-stream"
    return rt.blobs.get(image.blob_key), media_type


def delete_face(rt: StoreRuntime, person_id: str, face_id: int) -> None:
    _forget(rt, rt.store.delete_face(person_id, face_id))
