"""Readiness and the telemetry summary."""

from __future__ import annotations

import time
from typing import Any

from facegate import __version__
from facegate.services.runtime import Readiness, Runtime


def readiness(rt: Runtime) -> Readiness:
    return rt.readiness()


def telemetry_summary(rt: Runtime) -> dict[str, Any]:
    info = rt.engine.info
    return {
        "version": __version__,
        "uptime_seconds": round(time.time() - rt.telemetry.started, 1),
        "engine": {
            "type": info.label,
            "name": info.name,
            "model_version": info.model_version,
            "metric": info.metric,
            "threshold": info.threshold,
            "workers": rt.engine.workers,
            "second_descriptor": (
                {"name": info.secondary.name, "model_version": info.secondary.model_version} if info.secondary else None
            ),
        },
        "store": rt.store.counts(),
        "index": {"type": rt.settings.index.type, "faces": len(rt.index)},
        "counters": rt.telemetry.counter_values(),
        "latency": rt.telemetry.latency_summary(),
        "streams": [s.model_dump() for s in rt.telemetry.stream_values()],
    }
