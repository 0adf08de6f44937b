from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facegate.api.auth import IdentifyKey
from facegate.api.deps import RuntimeDep, read_upload
from facegate.services import identify as identify_service
from facegate.services.schemas import IdentifyResult

router = APIRouter(prefix="/api/v1", tags=["identify"])


@router.post("/identify", response_model=IdentifyResult, summary="Find and identify every face in a photo")
def identify(
    rt: RuntimeDep,
    principal: IdentifyKey,
    image: Annotated[UploadFile, File()],
    threshold: Annotated[float | None, Form(gt=0.0, lt=2.0, description="Distance cut-off")] = None,
    top_k: Annotated[int | None, Form(ge=1, le=100)] = None,
    max_faces: Annotated[int | None, Form(ge=1, le=200)] = None,
) -> IdentifyResult:
    upload = read_upload(image)
    return identify_service.identify(rt, upload.data, threshold=threshold, top_k=top_k, max_faces=max_faces)
