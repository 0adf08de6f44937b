"""POST /api/v1/search: gallery and history for a probe photo, scope identify, nothing recorded."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from tests.support import enroll, identify, image_field


def test_search_over_http(client: TestClient, dev: Path) -> None:
    earlier = identify(client, dev / "colin_powell" / "3.jpg")["faces"][0]["match_id"]  # unknown then
    person = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")["person"]["id"]
    total = client.get("/api/v1/matches").json()["total"]

    response = client.post("/api/v1/search", files=[image_field(dev / "colin_powell" / "2.jpg")], data={"limit": "5"})

    assert response.status_code == 200, response.text
    [face] = response.json()["faces"]
    assert face["candidates"][0]["person_id"] == person
    [sighting] = face["sightings"]
    assert sighting["match_id"] == earlier and sighting["person_id"] is None
    assert set(sighting) == {"match_id", "distance", "created_at", "person_id", "name", "source", "crop_url"}
    assert client.get(sighting["crop_url"]).status_code == 200
    assert client.get("/api/v1/matches").json()["total"] == total  # nothing recorded


def test_search_needs_the_identify_scope(client: TestClient, runtime: Runtime, dev: Path) -> None:
    reader = keys_service.create_key(runtime, name="reader", scopes=["read"]).secret
    response = client.post(
        "/api/v1/search", files=[image_field(dev / "colin_powell" / "2.jpg")], headers={"X-API-Key": reader}
    )
    assert response.status_code == 403
