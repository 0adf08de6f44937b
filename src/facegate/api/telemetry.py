from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from facegate.api.auth import MetricsKey, ReadKey
from facegate.api.deps import RuntimeDep
from facegate.services import status

router = APIRouter(tags=["telemetry"])


@router.get("/api/v1/telemetry", summary="JSON summary: counts, engine, latencies")
def telemetry(rt: RuntimeDep, principal: ReadKey) -> dict[str, Any]:
    return status.telemetry_summary(rt)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
def metrics(rt: RuntimeDep, principal: MetricsKey) -> Response:
    rt.telemetry.index_size.set(len(rt.index))
    return Response(rt.telemetry.prometheus_text(), media_type=CONTENT_TYPE_LATEST)
