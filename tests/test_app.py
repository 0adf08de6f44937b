"""create_app: every router wired in one place, OpenAPI and interactive docs served."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facegate import __version__
from facegate.app import create_app
from facegate.config import OpenCVEngineSettings, Settings
from facegate.services.runtime import Runtime

ROUTES = {
    ("/health", "get"),
    ("/ready", "get"),
    ("/metrics", "get"),
    ("/api/v1/enroll", "post"),
    ("/api/v1/identify", "post"),
    ("/api/v1/compare", "post"),
    ("/api/v1/people", "get"),
    ("/api/v1/people/{person_id}", "get"),
    ("/api/v1/people/{person_id}", "patch"),
    ("/api/v1/people/{person_id}", "delete"),
    ("/api/v1/matches", "get"),
    ("/api/v1/matches/{match_id}", "get"),
    ("/api/v1/matches/{match_id}/crop", "get"),
    ("/api/v1/telemetry", "get"),
}


def test_openapi_lists_every_route(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "facegate"
    assert spec["info"]["version"] == __version__
    listed = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert listed >= ROUTES, ROUTES - listed


def test_openapi_documents_the_multipart_enroll_form(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/enroll"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    fields = spec["components"]["schemas"][ref]["properties"]
    assert {"image", "name", "person_id", "metadata", "external_id"} <= set(fields)
    assert "201" in spec["paths"]["/api/v1/enroll"]["post"]["responses"]


def test_docs_serve_html(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    # Everything the page loads comes from this server (no CDN), and the page's script asks for the document.
    script = client.get("/docs/facegate.js")
    assert script.status_code == 200 and "/openapi.json" in script.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200, asset
    assert "https://" not in response.text


def test_app_over_a_shared_runtime_leaves_it_open(runtime: Runtime) -> None:
    # /ready is public: no key needed.
    with TestClient(create_app(runtime=runtime)) as client:
        assert client.get("/ready").status_code == 200
    # The lifespan does not close a runtime it was handed: a second app can use it.
    with TestClient(create_app(runtime=runtime)) as client:
        assert client.get("/ready").status_code == 200
    assert runtime.store.ping()


def test_first_start_shows_the_new_admin_key_with_the_configured_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=1, port=8123, engine=OpenCVEngineSettings())
    with TestClient(create_app(settings)) as client:
        printed = capsys.readouterr().out
        key = next(line.strip() for line in printed.splitlines() if line.strip().startswith("fg_"))
        assert "http://127.0.0.1:8123/api/v1/people" in printed
        assert client.get("/api/v1/people", headers={"X-API-Key": key}).status_code == 200
    with TestClient(create_app(settings)):
        assert "fg_" not in capsys.readouterr().out  # shown once: a key exists now
