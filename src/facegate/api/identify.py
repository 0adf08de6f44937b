from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facegate.api.auth import IdentifyKey
from facegate.api.deps import MAX_THRESHOLD, MIN_THRESHOLD, RuntimeDep, read_upload
from facegate.services import identify as identify_service
from facegate.services.schemas import IdentifyResult

router = APIRouter(prefix="/api/v1", tags=["identify"])


@router.post("/identify", response_model=IdentifyResult, summary="Find and identify every face in a photo")
def identify(
    rt: RuntimeDep,
    principal: IdentifyKey,
    image: Annotated[UploadFile, File(description="A photo (JPEG, PNG, WebP, BMP, TIFF or GIF)")],
    threshold: Annotated[
        float | None,
        Form(
            ge=MIN_THRESHOLD,
            lt=MAX_THRESHOLD,
            description="Distance cut-off (default: the engine's calibrated one)",
            examples=[0.56],
        ),
    ] = None,
    top_k: Annotated[
        int | None, Form(ge=1, le=100, description="Candidates per face (default 3)", examples=[3])
    ] = None,
    max_faces: Annotated[
        int | None, Form(ge=1, le=200, description="Faces identified, largest first (default 20)", examples=[20])
    ] = None,
) -> IdentifyResult:
    upload = read_upload(image)
    return identify_service.identify(rt, upload.data, threshold=threshold, top_k=top_k, max_faces=max_faces)
