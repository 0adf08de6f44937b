"""/api/v1/streams on SQLite and PostgreSQL: the embedded server runs a stream added over HTTP (live status, the
latest frame, an `appeared` event for an enrolled person), removing it stops it; 409/422/404/403 cases; a server
that leaves streams to workers answers `no_frame`; per-stream values in /metrics and the telemetry summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from facegate.config import StreamSettings
from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from facegate.stream.manager import StreamManager
from tests.api.conftest import ClientFactory
from tests.support import enroll

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def _wait(what: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


def _manager(client: TestClient) -> StreamManager:
    manager = client.app.state.streams  # type: ignore[attr-defined]
    assert isinstance(manager, StreamManager)
    return manager


@pytest.fixture
def hamilton(dev: Path) -> str:
    return str(dev / "video" / "short_hamilton_clip.mp4")


def test_added_stream_runs_shows_live_status_and_frame_and_stops_when_deleted(
    client: TestClient, hamilton: str
) -> None:
    response = client.post("/api/v1/streams", json={"source": hamilton, "name": "stage", "loop": True, "sample_fps": 4})
    assert response.status_code == 201, response.text
    stream = response.json()
    assert set(stream) >= {"id", "name", "source", "state", "fps", "lag_seconds", "frames", "dropped_frames"}
    assert (stream["name"], stream["loop"], stream["sample_fps"]) == ("stage", True, 4.0)

    def running() -> dict[str, Any] | None:
        [item] = client.get("/api/v1/streams").json()["items"]
        return item if item["state"] == "running" and item["frames"] > 10 else None

    item = _wait(running)
    assert item["id"] == stream["id"] and item["worker"].startswith("server-") and item["fps"] > 0

    frame = client.get(f"/api/v1/streams/{stream['id']}/frame")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (360, 640)

    # The status row in the store follows (what other replicas show).
    _wait(lambda: client.app.state.runtime.store.streams.get(stream["id"]).status)  # type: ignore[attr-defined]

    assert client.delete(f"/api/v1/streams/{stream['id']}").status_code == 204
    _wait(lambda: not _manager(client).running(), timeout=10)
    for path in (f"/api/v1/streams/{stream['id']}", f"/api/v1/streams/{stream['id']}/frame"):
        gone = client.get(path)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "stream_not_found"
    assert client.get("/api/v1/streams").json() == {"items": []}


def test_enrolled_person_appears_in_the_event_hub(
    client: TestClient, runtime: Runtime, dev: Path, hamilton: str
) -> None:
    person = enroll(client, [dev / "lin_manuel_miranda" / "1.png"], name="Lin-Manuel Miranda")["person"]
    with runtime.events.hub.subscribe() as events:
        created = client.post("/api/v1/streams", json={"source": hamilton, "name": "hamilton"}).json()
        deadline = time.monotonic() + 60
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            event = events.get(0.5)
            if event is None:
                continue
            body = event.body()
            seen.append(body)
            # Named when announced, or by `updated` when the vote named him after an unknown `appeared`.
            if body["type"] in ("appeared", "updated") and body["person_id"] == person["id"]:
                break
        else:
            raise AssertionError(f"no event naming him in {seen}")
    assert body["stream"] == "hamilton" and body["name"] == "Lin-Manuel Miranda"
    # The stream shows him while he is in view, or has ended (a 10 s file, not looped).
    shown = client.get(f"/api/v1/streams/{created['id']}").json()
    assert shown["state"] in ("running", "ended")


def test_disabled_stream_stops_is_listed_disabled_and_runs_again_when_enabled(
    client: TestClient, runtime: Runtime, hamilton: str
) -> None:
    stream = client.post("/api/v1/streams", json={"source": hamilton, "name": "stage", "loop": True}).json()
    assert stream["enabled"] is True
    _wait(lambda: _manager(client).running() == [stream["id"]])

    response = client.patch(f"/api/v1/streams/{stream['id']}", json={"enabled": False})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["enabled"], body["state"], body["tracks"], body["fps"]) == (False, "disabled", [], 0.0)
    _wait(lambda: not _manager(client).running(), timeout=10)
    [listed] = client.get("/api/v1/streams").json()["items"]
    assert (listed["id"], listed["state"], listed["enabled"]) == (stream["id"], "disabled", False)
    assert runtime.store.streams.get(stream["id"]).enabled is False  # type: ignore[union-attr]
    time.sleep(1.5)  # the manager's next looks leave it stopped
    assert not _manager(client).running()

    enabled = client.patch(f"/api/v1/streams/{stream['id']}", json={"enabled": True})
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    _wait(lambda: _manager(client).running() == [stream["id"]])
    _wait(lambda: client.get(f"/api/v1/streams/{stream['id']}").json()["state"] == "running")
    actions = [e["action"] for e in client.get("/api/v1/audit").json()["items"]]
    assert {"stream_disabled", "stream_enabled"} <= set(actions)


@pytest.mark.parametrize("body", [{}, {"enabled": "no"}, {"enabled": None}, {"enabled": 0}, {"enabled": True, "x": 1}])
def test_bad_patch_bodies_are_422_and_change_nothing(client: TestClient, body: dict[str, Any]) -> None:
    stream = client.post("/api/v1/streams", json={"source": "rtsp://127.0.0.1:9/x", "name": "cam"}).json()
    response = client.patch(f"/api/v1/streams/{stream['id']}", json=body)
    assert response.status_code == 422, response.text
    assert client.get(f"/api/v1/streams/{stream['id']}").json()["enabled"] is True


def test_name_clash_is_409_and_stores_nothing(client: TestClient) -> None:
    assert client.post("/api/v1/streams", json={"source": "rtsp://127.0.0.1:9/x", "name": "cam"}).status_code == 201
    clash = client.post("/api/v1/streams", json={"source": "0", "name": "cam"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "stream_name_taken"
    assert len(client.get("/api/v1/streams").json()["items"]) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"source": "file:///etc/passwd", "name": "x"}, "invalid_source"),
        ({"source": "", "name": "x"}, None),
        ({"source": "0", "name": ""}, None),
        ({"source": "0", "name": "   "}, "invalid_name"),
        ({"source": "0", "name": "x", "sample_fps": 0}, None),
        ({"source": "0", "name": "x", "sample_fps": 61}, None),
        ({"source": "0", "name": "x", "unknown": 1}, None),
        ({"name": "x"}, None),
    ],
)
def test_bad_bodies_are_422(client: TestClient, body: dict[str, Any], code: str | None) -> None:
    response = client.post("/api/v1/streams", json=body)
    assert response.status_code == 422, response.text
    if code:
        assert response.json()["error"]["code"] == code
    assert client.get("/api/v1/streams").json() == {"items": []}


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("DELETE", ""), ("GET", "/frame"), ("PATCH", "")])
def test_unknown_stream_is_404(client: TestClient, method: str, suffix: str) -> None:
    body = {"enabled": False} if method == "PATCH" else None
    response = client.request(method, f"/api/v1/streams/{UNKNOWN_ID}{suffix}", json=body)
    assert response.status_code == 404 and response.json()["error"]["code"] == "stream_not_found"


def test_read_key_lists_but_cannot_add_change_or_remove(client: TestClient, runtime: Runtime) -> None:
    stream = client.post("/api/v1/streams", json={"source": "rtsp://127.0.0.1:9/x", "name": "cam"}).json()
    read = {"X-API-Key": keys_service.create_key(runtime, name="r", scopes=["read"]).secret}
    assert client.get("/api/v1/streams", headers=read).status_code == 200
    assert client.get(f"/api/v1/streams/{stream['id']}", headers=read).status_code == 200
    assert client.post("/api/v1/streams", json={"source": "0", "name": "y"}, headers=read).status_code == 403
    assert client.delete(f"/api/v1/streams/{stream['id']}", headers=read).status_code == 403
    refused = client.patch(f"/api/v1/streams/{stream['id']}", json={"enabled": False}, headers=read)
    assert refused.status_code == 403 and runtime.store.streams.get(stream["id"]).enabled  # type: ignore[union-attr]


def test_unreachable_source_fails_and_is_retried(client: TestClient) -> None:
    # Nothing listens on port 9: the stream fails with the source's error, and the manager keeps retrying it.
    stream = client.post("/api/v1/streams", json={"source": "/nonexistent/clip.mp4", "name": "gone"}).json()
    failed = _wait(lambda: (s := client.get(f"/api/v1/streams/{stream['id']}").json())["state"] == "failed" and s)
    assert failed["error"]
    missing = client.get(f"/api/v1/streams/{stream['id']}/frame")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_frame"


def test_server_without_streams_answers_no_frame(make_client: ClientFactory) -> None:
    client, _ = make_client(streams=StreamSettings(run_in_server=False))
    assert client.app.state.streams is None  # type: ignore[attr-defined]
    stream = client.post("/api/v1/streams", json={"source": "0", "name": "desk"}).json()
    time.sleep(1.5)  # no process here runs it: it stays pending
    assert client.get(f"/api/v1/streams/{stream['id']}").json()["state"] == "pending"
    response = client.get(f"/api/v1/streams/{stream['id']}/frame")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_frame"


def test_stream_values_in_metrics_and_telemetry(client: TestClient, hamilton: str) -> None:
    stream = client.post("/api/v1/streams", json={"source": hamilton, "name": "stage", "loop": True}).json()
    _wait(lambda: (s := client.get(f"/api/v1/streams/{stream['id']}").json())["frames"] > 0 and s["state"] == "running")
    metrics = client.get("/metrics").text
    labels = f'name="stage",stream="{stream["id"]}"'
    for name in ("fps", "lag_seconds", "frames", "dropped_frames"):
        assert f"facegate_stream_{name}{{{labels}}}" in metrics, name
    assert f'facegate_stream_state{{name="stage",state="running",stream="{stream["id"]}"}} 1.0' in metrics
    [summary] = client.get("/api/v1/telemetry").json()["streams"]
    assert (summary["id"], summary["name"], summary["state"]) == (stream["id"], "stage", "running")
    assert summary["frames"] > 0
