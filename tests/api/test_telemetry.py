"""/metrics (Prometheus text) and /api/v1/telemetry (JSON summary)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from facegate.services.schemas import TelemetrySummary
from tests.support import enroll, identify


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _activity(client: TestClient, dev: Path) -> None:
    enroll(client, [dev / "colin_powell" / "1.jpg", dev / "noface" / "banana.jpg"], name="Colin Powell")
    identify(client, dev / "colin_powell" / "2.jpg")
    identify(client, dev / "ariel_sharon" / "1.jpg")


def test_metrics_is_prometheus_text_with_our_metrics(client: TestClient, dev: Path) -> None:
    _activity(client, dev)

    response = client.get("/metrics")

    assert response.status_code == 200
    # The body is the classic text format: its media type says 0.0.4 (prometheus_client's CONTENT_TYPE_LATEST
    # names 1.0.0, which this body is not and Prometheus before 3.0 refuses).
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = _samples(response.text)
    names = {name for name, _ in samples}
    for metric in (
        "facegate_http_requests_total",
        "facegate_http_request_seconds_bucket",
        "facegate_engine_seconds_count",
        "facegate_identified_faces_total",
        "facegate_enrolled_faces_total",
        "facegate_rejected_images_total",
        "facegate_index_faces",
    ):
        assert metric in names, metric
    assert samples[("facegate_enrolled_faces_total", ())] == 1
    assert samples[("facegate_rejected_images_total", (("reason", "no_face"),))] == 1
    assert samples[("facegate_identified_faces_total", (("result", "known"),))] == 1
    assert samples[("facegate_identified_faces_total", (("result", "unknown"),))] == 1
    assert samples[("facegate_index_faces", ())] == 1
    enrolled = (("method", "POST"), ("route", "/api/v1/enroll"), ("status", "201"))
    assert samples[("facegate_http_requests_total", enrolled)] == 1


def test_metrics_are_per_runtime(client: TestClient) -> None:
    # A fresh runtime starts from zero: nothing leaks between apps through a global registry.
    samples = _samples(client.get("/metrics").text)
    assert ("facegate_enrolled_faces_total", ()) in samples
    assert samples[("facegate_enrolled_faces_total", ())] == 0


def test_telemetry_summary_counts(client: TestClient, dev: Path) -> None:
    _activity(client, dev)

    body = client.get("/api/v1/telemetry").json()

    TelemetrySummary.model_validate(body)  # the model the OpenAPI document declares
    assert body["store"] == {"people": 1, "faces": 1, "images": 1, "matches": 2, "unknown_matches": 1}
    assert body["index"] == {"type": "hnsw", "faces": 1}
    assert body["engine"]["name"] == "opencv"
    assert body["engine"]["metric"] == "cosine"
    assert body["engine"]["workers"] == 2
    assert 0 < body["engine"]["threshold"] < 2
    assert body["uptime_seconds"] >= 0
    assert body["version"]
    assert body["counters"]["facegate_enrolled_faces"] == {"all": 1.0}
    assert body["counters"]["facegate_identified_faces"] == {"result=known": 1.0, "result=unknown": 1.0}
    identify_latency = body["latency"]["/api/v1/identify"]
    assert identify_latency["count"] == 2
    assert identify_latency["mean_ms"] > 0


def test_unmatched_routes_are_counted_under_one_label(client: TestClient) -> None:
    client.get("/no/such/page")
    client.get("/another/missing/page")
    samples = _samples(client.get("/metrics").text)
    labels = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert samples[("facegate_http_requests_total", labels)] == 2
