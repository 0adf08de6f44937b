from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facegate.api.auth import IdentifyKey
from facegate.api.deps import RuntimeDep, read_upload
from facegate.services import compare as compare_service
from facegate.services.schemas import CompareResult

router = APIRouter(prefix="/api/v1", tags=["compare"])


@router.post("/compare", response_model=CompareResult, summary="1:1: are the largest faces the same person?")
def compare(
    rt: RuntimeDep,
    principal: IdentifyKey,
    image_a: Annotated[UploadFile, File()],
    image_b: Annotated[UploadFile, File()],
    threshold: Annotated[float | None, Form(gt=0.0, lt=2.0)] = None,
) -> CompareResult:
    return compare_service.compare(rt, read_upload(image_a).data, read_upload(image_b).data, threshold=threshold)
