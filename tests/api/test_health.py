"""/health and /ready: liveness, and readiness that names the part that is not usable."""

from __future__ import annotations

import shutil

from fastapi.testclient import TestClient

from facegate.api.errors import NotReadyBody
from facegate.config import HNSWIndexSettings
from facegate.index.hnsw import HNSWIndex
from facegate.services.runtime import Runtime
from facegate.vision.pool import EnginePool

PARTS = {"store", "blobs", "engine", "index"}


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_lists_every_part(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["parts"] == dict.fromkeys(PARTS, True)


def _not_ready(client: TestClient, part: str) -> None:
    response = client.get("/ready")
    assert response.status_code == 503
    NotReadyBody.model_validate(response.json())  # the model the document declares for this 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert part in error["message"]
    assert error["parts"][part] is False
    assert all(ok for name, ok in error["parts"].items() if name != part)
    assert client.get("/health").status_code == 200  # alive, just not ready


def test_unwritable_blob_store_is_named(client: TestClient, runtime: Runtime) -> None:
    # A file where the blob directory should be: unwritable even for root, unlike a chmod.
    root = runtime.settings.blob_path
    shutil.rmtree(root)
    root.write_bytes(b"not a directory")

    _not_ready(client, "blobs")


def test_closed_database_is_named(client: TestClient, runtime: Runtime) -> None:
    runtime.store.close()
    _not_ready(client, "store")


def test_engine_not_started_is_named(client: TestClient, runtime: Runtime) -> None:
    # A pool that was built but never opened (construction does no I/O and starts no process).
    runtime.engine = EnginePool(runtime.settings.engine, workers=1)
    _not_ready(client, "engine")


def test_index_not_opened_is_named(client: TestClient, runtime: Runtime) -> None:
    runtime.index = HNSWIndex(HNSWIndexSettings(), dim=128, metric="cosine")
    _not_ready(client, "index")


def test_ready_again_once_the_part_is_back(client: TestClient, runtime: Runtime) -> None:
    root = runtime.settings.blob_path
    shutil.rmtree(root)
    root.write_bytes(b"")
    assert client.get("/ready").status_code == 503
    root.unlink()
    root.mkdir()
    assert client.get("/ready").status_code == 200
