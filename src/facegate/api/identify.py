from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from facegate.api.auth import IdentifyKey
from facegate.api.deps import MAX_THRESHOLD, MIN_THRESHOLD, RuntimeDep
from facegate.services import identify as identify_service
from facegate.services.schemas import IdentifyResult

router = APIRouter(prefix="/api/v1", tags=["identify"])


@router.post("/identify", response_model=IdentifyResult, summary="Find and identify every face in a photo")
async def identify(
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
    # The busiest route is async so that FastAPI checks the response on the event loop: for a sync route it does
    # that in a thread of its own, a third hop per request after the key check's and the route's. The photo is
    # read without one (in memory up to 1 MB, else Starlette reads it in a thread); the work runs in one hop.
    data = await image.read()
    return await run_in_threadpool(
        identify_service.identify, rt, data, threshold=threshold, top_k=top_k, max_faces=max_faces
    )
