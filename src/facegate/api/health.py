from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse

from facegate.api.deps import RuntimeDep
from facegate.api.errors import error_body
from facegate.services import status

router = APIRouter(tags=["health"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/docs")


@router.get("/health", summary="Process is alive")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Store, blob store, engine and index are usable",
    responses={503: {"description": "A part is not usable; the body names it"}},
)
def ready(rt: RuntimeDep) -> Any:
    result = status.readiness(rt)
    if result.ok:
        return {"status": "ready", "parts": result.parts}
    failing = [name for name, ok in result.parts.items() if not ok]
    return JSONResponse(
        error_body("not_ready", f"Not ready: {', '.join(failing)} unusable.", parts=result.parts),
        status_code=503,
    )
