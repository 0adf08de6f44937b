from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facegate.api.auth import IdentifyKey
from facegate.api.deps import MAX_THRESHOLD, MIN_THRESHOLD, RuntimeDep, read_upload
from facegate.services import compare as compare_service
from facegate.services.schemas import CompareResult

router = APIRouter(prefix="/api/v1", tags=["compare"])


@router.post("/compare", response_model=CompareResult, summary="1:1: are the largest faces the same person?")
def compare(
    rt: RuntimeDep,
    principal: IdentifyKey,
    image_a: Annotated[UploadFile, File(description="A photo; its largest face is compared")],
    image_b: Annotated[UploadFile, File(description="Another photo; its largest face is compared")],
    threshold: Annotated[
        float | None,
        Form(ge=MIN_THRESHOLD, lt=MAX_THRESHOLD, description="Distance cut-off for `same`", examples=[0.56]),
    ] = None,
) -> CompareResult:
    return compare_service.compare(rt, read_upload(image_a).data, read_upload(image_b).data, threshold=threshold)
