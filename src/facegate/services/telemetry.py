"""Counters and timings in a per-runtime Prometheus registry, and the JSON summary built from them."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Telemetry:
    def __init__(self) -> None:
        self.started = time.time()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facegate_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "facegate_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.engine_seconds = Histogram(
            "facegate_engine_seconds",
            "Decode+detect+embed time per image",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.faces_identified = Counter(
            "facegate_identified_faces", "Faces seen by identify", ["result"], registry=self.registry
        )
        self.enrolled_faces = Counter("facegate_enrolled_faces", "Faces enrolled", registry=self.registry)
        self.rejected_images = Counter(
            "facegate_rejected_images", "Images rejected at enrollment", ["reason"], registry=self.registry
        )
        self.index_size = Gauge("facegate_index_faces", "Faces in the vector index", registry=self.registry)

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def counter_values(self) -> dict[str, Any]:
        """Current values of our counters, flattened by label, for the JSON summary."""
        values: dict[str, Any] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                values.setdefault(metric.name, {})[label or "all"] = sample.value
        return values

    def latency_summary(self) -> dict[str, dict[str, float]]:
        """Mean latency and count per route, from the histogram sums."""
        totals: dict[str, dict[str, float]] = {}
        for metric in self.registry.collect():
            if metric.name != "facegate_http_request_seconds":
                continue
            for sample in metric.samples:
                route = sample.labels.get("route", "")
                entry = totals.setdefault(route, {"count": 0.0, "sum": 0.0})
                if sample.name.endswith("_count"):
                    entry["count"] = sample.value
                elif sample.name.endswith("_sum"):
                    entry["sum"] = sample.value
        return {
            route: {
                "count": v["count"],
                "mean_ms": round(1000 * v["sum"] / v["count"], 2) if v["count"] else 0.0,
            }
            for route, v in totals.items()
        }
