from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facegate.api.auth import IdentifyKey
from facegate.api.deps import MAX_THRESHOLD, MIN_THRESHOLD, RuntimeDep, read_upload
from facegate.services import search as search_service
from facegate.services.schemas import SearchResult

router = APIRouter(prefix="/api/v1", tags=["identify"])


@router.post(
    "/search",
    response_model=SearchResult,
    summary="Search the gallery and match history with a photo (nothing is recorded)",
)
def search(
    rt: RuntimeDep,
    principal: IdentifyKey,
    image: Annotated[UploadFile, File(description="A photo (JPEG, PNG, WebP, BMP, TIFF or GIF)")],
    threshold: Annotated[
        float | None,
        Form(ge=MIN_THRESHOLD, lt=MAX_THRESHOLD, description="Distance cut-off (default: the engine's calibrated one)"),
    ] = None,
    top_k: Annotated[int | None, Form(ge=1, le=100, description="Gallery candidates per face (default 3)")] = None,
    limit: Annotated[int | None, Form(ge=1, le=500, description="Past sightings per face (default 20)")] = None,
    max_faces: Annotated[int | None, Form(ge=1, le=200, description="Faces searched, largest first")] = None,
) -> SearchResult:
    """Per face: the enrolled people nearest to it (as identify ranks them, rejections included) and the faces in
    match history within the threshold, nearest first, named or unknown. Unlike identify, nothing is written
    to match history."""
    upload = read_upload(image)
    return search_service.search(rt, upload.data, threshold=threshold, top_k=top_k, limit=limit, max_faces=max_faces)
