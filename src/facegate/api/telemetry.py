from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from facegate.api.auth import MetricsKey, ReadKey
from facegate.api.deps import RuntimeDep
from facegate.services import status
from facegate.services.schemas import TelemetrySummary

router = APIRouter(tags=["telemetry"])

# generate_latest writes the classic text format (0.0.4). prometheus_client's CONTENT_TYPE_LATEST names 1.0.0,
# which promises a format that body is not (and that Prometheus before 3.0 does not accept).
METRICS_MEDIA_TYPE = CONTENT_TYPE_PLAIN_0_0_4


@router.get("/api/v1/telemetry", response_model=TelemetrySummary, summary="JSON summary: counts, engine, latencies")
def telemetry(rt: RuntimeDep, principal: ReadKey) -> TelemetrySummary:
    return TelemetrySummary.model_validate(status.telemetry_summary(rt))


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (text exposition format 0.0.4)",
    responses={200: {"content": {METRICS_MEDIA_TYPE: {"schema": {"type": "string"}}}}},
)
def metrics(rt: RuntimeDep, principal: MetricsKey) -> Response:
    rt.telemetry.index_size.set(len(rt.index))
    return Response(rt.telemetry.prometheus_text(), media_type=METRICS_MEDIA_TYPE)
