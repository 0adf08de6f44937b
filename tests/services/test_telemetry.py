"""services.telemetry: a Prometheus registry per runtime, and the JSON view of it."""

from __future__ import annotations

from facegate.services.telemetry import Telemetry


def test_registries_are_independent() -> None:
    a, b = Telemetry(), Telemetry()
    a.enrolled_faces.inc(3)
    assert a.counter_values()["facegate_enrolled_faces"] == {"all": 3.0}
    assert b.counter_values()["facegate_enrolled_faces"] == {"all": 0.0}


def test_counter_values_are_flattened_by_label() -> None:
    t = Telemetry()
    t.rejected_images.labels(reason="no_face").inc()
    t.rejected_images.labels(reason="no_face").inc()
    t.rejected_images.labels(reason="blurry").inc()
    t.requests.labels("GET", "/health", "200").inc()
    values = t.counter_values()
    assert values["facegate_rejected_images"] == {"reason=no_face": 2.0, "reason=blurry": 1.0}
    assert values["facegate_http_requests"] == {"method=GET,route=/health,status=200": 1.0}


def test_latency_summary_per_route() -> None:
    t = Telemetry()
    for seconds in (0.010, 0.030):
        t.request_seconds.labels("/api/v1/identify").observe(seconds)
    summary = t.latency_summary()
    assert summary == {"/api/v1/identify": {"count": 2.0, "mean_ms": 20.0}}


def test_prometheus_text() -> None:
    t = Telemetry()
    t.index_size.set(7)
    text = t.prometheus_text().decode()
    assert "# TYPE facegate_index_faces gauge" in text
    assert "facegate_index_faces 7.0" in text
