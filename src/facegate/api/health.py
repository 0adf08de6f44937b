from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse

from facegate.api.deps import RuntimeDep
from facegate.api.errors import error_body
from facegate.services import status
from facegate.services.schemas import HealthStatus, ReadyStatus

router = APIRouter(tags=["health"])


@router.get("/", include_in_schema=False)
def root(rt: RuntimeDep) -> RedirectResponse:
    """The web client when it is served, else the API docs."""
    return RedirectResponse("/ui/" if rt.settings.ui.enabled else "/docs")


@router.get("/health", response_model=HealthStatus, summary="Process is alive")
def health() -> HealthStatus:
    return HealthStatus(status="ok")


# The 503 (NotReadyBody) is declared with the other error statuses, in api/openapi.py.
@router.get("/ready", response_model=ReadyStatus, summary="Store, blob store, engine and index are usable")
def ready(rt: RuntimeDep) -> ReadyStatus | JSONResponse:
    result = status.readiness(rt)
    if result.ok:
        return ReadyStatus(status="ready", parts=result.parts)
    failing = [name for name, ok in result.parts.items() if not ok]
    return JSONResponse(
        error_body("not_ready", f"Not ready: {', '.join(failing)} unusable.", parts=result.parts),
        status_code=503,
    )
