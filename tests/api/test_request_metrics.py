"""Every request is counted by route template and status, including the body-size 413s and crashes."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from facegate.config import LimitSettings
from tests.api.conftest import ClientFactory
from tests.support import FailingBlobStore, image_field


def _count(client: TestClient, route: str, status: int) -> float:
    for line in client.get("/metrics").text.splitlines():
        labels = f'route="{route}"' in line and f'status="{status}"' in line
        if line.startswith("facegate_http_requests_total{") and labels:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_routes_are_counted_by_template(client: TestClient) -> None:
    client.get("/api/v1/people/some-id")
    client.get("/api/v1/people/other-id")
    assert _count(client, "/api/v1/people/{person_id}", 404) == 2.0


def test_a_body_rejected_for_size_is_counted(make_client: ClientFactory) -> None:
    client, _ = make_client(limits=LimitSettings(max_upload_bytes=2048))
    response = client.post("/api/v1/identify", files=[("image", ("big.jpg", b"x" * 10_000, "image/jpeg"))])
    assert response.status_code == 413
    assert _count(client, "unmatched", 413) == 1.0


def test_a_crash_is_counted_as_500(make_client: ClientFactory, dev: Path) -> None:
    client, rt = make_client()
    rt.blobs = FailingBlobStore(rt.settings.blob_path, fail_on=1)
    with TestClient(client.app, raise_server_exceptions=False, headers=dict(client.headers)) as raw:
        response = raw.post("/api/v1/enroll", data={"name": "x"}, files=[image_field(dev / "colin_powell" / "1.jpg")])
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert _count(raw, "/api/v1/enroll", 500) == 1.0
