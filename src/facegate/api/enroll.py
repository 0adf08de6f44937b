from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from facegate.api.auth import EnrollKey
from facegate.api.deps import RuntimeDep, read_upload
from facegate.services import audit
from facegate.services import enroll as enroll_service
from facegate.services.schemas import EnrollResult

router = APIRouter(prefix="/api/v1", tags=["enroll"])


@router.post(
    "/enroll",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollResult,
    summary="Enroll a new person (name) or add faces to one (person_id)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "examples": {
                        "new_person": {
                            "summary": "A new person, from one or more photos",
                            "value": {"name": "Colin Powell", "metadata": '{"team": "blue"}'},
                        },
                        "more_faces": {
                            "summary": "More photos of someone enrolled",
                            "value": {"person_id": "5b0f3a2e-9c41-4d7e-8a63-2f1d0c9e7b14"},
                        },
                    }
                }
            }
        }
    },
)
def enroll(
    rt: RuntimeDep,
    principal: EnrollKey,
    image: Annotated[
        list[UploadFile], File(description="One or more photos of the person (JPEG, PNG, WebP, BMP, TIFF or GIF)")
    ],
    name: Annotated[
        str | None, Form(max_length=200, description="A new person's name", examples=["Colin Powell"])
    ] = None,
    person_id: Annotated[
        str | None,
        Form(description="Add the faces to this person instead"),
    ] = None,
    metadata: Annotated[str | None, Form(description="A JSON object, as text", examples=['{"team": "blue"}'])] = None,
    external_id: Annotated[
        str | None, Form(max_length=200, description="Your own id for the person (unique)", examples=["emp-1042"])
    ] = None,
) -> EnrollResult:
    result = enroll_service.enroll(
        rt,
        [read_upload(u) for u in image],
        name=name,
        person_id=person_id,
        metadata=enroll_service.parse_metadata(metadata),
        external_id=external_id,
    )
    action = "person_created" if person_id is None else "faces_added"
    audit.record(rt, principal.actor, action, result.person.id, faces=[f.id for f in result.faces])
    return result
