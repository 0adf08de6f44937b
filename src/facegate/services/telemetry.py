"""Counters and timings in a per-runtime Prometheus registry, and the JSON summary built from them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from facegate.events.delivery import DeliveryStats
from facegate.services.schemas import StreamTelemetry

log = logging.getLogger(__name__)

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
        self._streams: Callable[[], list[StreamTelemetry]] = list
        self.registry.register(_StreamsCollector(self.stream_values))

    def watch_events(self, stats: Callable[[], list[DeliveryStats]]) -> None:
        """Event delivery counts, read from the publishers when scraped (they count on their own threads)."""
        self.registry.register(_EventsCollector(stats))

    def watch_streams(self, streams: Callable[[], list[StreamTelemetry]]) -> None:
        """Per-stream values, read when scraped or summarised (from the streams' status rows, overlaid with the
        live values of the streams this process runs)."""
        self._streams = streams

    def stream_values(self) -> list[StreamTelemetry]:
        return self._streams()

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


class _EventsCollector(Collector):
    """facegate_events_{published,dropped,failed}_total and facegate_events_queued, by backend (nats, redis,
    mqtt, webhook: several webhooks add up; subscribers: this process's SSE connections and watchers)."""

    def __init__(self, stats: Callable[[], list[DeliveryStats]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        families = {
            "published": CounterMetricFamily(
                "facegate_events_published", "Events the backend accepted", labels=["backend"]
            ),
            "dropped": CounterMetricFamily(
                "facegate_events_dropped",
                "Events pushed out of a full queue or undelivered at shutdown",
                labels=["backend"],
            ),
            "failed": CounterMetricFamily(
                "facegate_events_failed", "Events given up after a refusal or every retry failing", labels=["backend"]
            ),
        }
        queued = GaugeMetricFamily("facegate_events_queued", "Events waiting for delivery", labels=["backend"])
        totals: dict[str, list[int]] = {}
        for entry in self._stats():
            total = totals.setdefault(entry.backend, [0, 0, 0, 0])
            for i, value in enumerate((entry.published, entry.dropped, entry.failed, entry.queued)):
                total[i] += value
        for backend, (published, dropped, failed, waiting) in sorted(totals.items()):
            families["published"].add_metric([backend], published)
            families["dropped"].add_metric([backend], dropped)
            families["failed"].add_metric([backend], failed)
            queued.add_metric([backend], waiting)
        yield from families.values()
        yield queued


class _StreamsCollector(Collector):
    """facegate_stream_{fps,lag_seconds,frames,dropped_frames} by stream, and facegate_stream_state (1 for the
    current state). Frames are gauges, not counters: they restart from zero when a stream restarts or moves."""

    def __init__(self, streams: Callable[[], list[StreamTelemetry]]) -> None:
        self._streams = streams

    def collect(self) -> Iterator[Metric]:
        labels = ["stream", "name"]
        fps = GaugeMetricFamily("facegate_stream_fps", "Source frames read per second", labels=labels)
        lag = GaugeMetricFamily(
            "facegate_stream_lag_seconds", "Age of the frame analysed last when it was analysed", labels=labels
        )
        frames = GaugeMetricFamily("facegate_stream_frames", "Frames read since the stream (re)started", labels=labels)
        dropped = GaugeMetricFamily(
            "facegate_stream_dropped_frames", "Frames dropped since the stream (re)started", labels=labels
        )
        state = GaugeMetricFamily(
            "facegate_stream_state", "1 for the stream's current state", labels=[*labels, "state"]
        )
        try:
            streams = self._streams()
        except Exception:  # the store is unreachable: the scrape still answers, without these
            log.exception("stream telemetry unavailable")
            streams = []
        for s in streams:
            fps.add_metric([s.id, s.name], s.fps)
            lag.add_metric([s.id, s.name], s.lag_seconds)
            frames.add_metric([s.id, s.name], s.frames)
            dropped.add_metric([s.id, s.name], s.dropped_frames)
            state.add_metric([s.id, s.name, s.state], 1)
        yield from (fps, lag, frames, dropped, state)
