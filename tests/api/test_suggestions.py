"""/api/v1/suggestions: recurring strangers of real photos listed, shown, enrolled and dismissed over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from facegate.services.suggestions import Grouping
from tests.support import identify

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def strangers(client: TestClient, runtime: Runtime, identities: dict[str, list[Path]]) -> dict[str, set[int]]:
    """Powell and Bush seen 5 times each while nobody is enrolled, then grouped (the server's background pass)."""
    seen = {
        name: {identify(client, photo, max_faces=1)["faces"][0]["match_id"] for photo in identities[name][:5]}
        for name in ("colin_powell", "george_w_bush")
    }
    Grouping.of(runtime).catch_up()
    return seen


def _by_members(client: TestClient, strangers: dict[str, set[int]]) -> dict[str, str]:
    """identity -> suggestion id."""
    found = {}
    for item in client.get("/api/v1/suggestions").json()["items"]:
        faces = {f["match_id"] for f in client.get(f"/api/v1/suggestions/{item['id']}").json()["faces"]}
        found.update({name: item["id"] for name, ids in strangers.items() if ids == faces})
    return found


def test_list_and_show_suggestions(client: TestClient, strangers: dict[str, set[int]]) -> None:
    page = client.get("/api/v1/suggestions").json()
    assert page["total"] == 2 and len(page["items"]) == 2
    item = page["items"][0]
    assert set(item) == {"id", "size", "sightings", "first_seen", "last_seen", "sources", "representatives"}
    assert item["size"] == 5 and item["sightings"] == 5 and item["sources"] == ["api"]
    rep = item["representatives"][0]
    assert rep["crop_url"] == f"/api/v1/matches/{rep['match_id']}/crop"
    crop = client.get(rep["crop_url"])
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
    assert client.get("/api/v1/suggestions", params={"limit": 1, "offset": 1}).json()["total"] == 2

    shown = _by_members(client, strangers)
    assert set(shown) == {"colin_powell", "george_w_bush"}  # one suggestion each, exactly their faces


def test_enroll_a_suggestion_then_identify_names_them(
    client: TestClient, strangers: dict[str, set[int]], identities: dict[str, list[Path]]
) -> None:
    powell = _by_members(client, strangers)["colin_powell"]

    response = client.post(f"/api/v1/suggestions/{powell}/enroll", json={"name": "Colin Powell"})

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["person"]["name"] == "Colin Powell" and body["faces_added"] >= 1
    person = body["person"]["id"]
    assert client.get(f"/api/v1/suggestions/{powell}").status_code == 404
    assert client.get("/api/v1/suggestions").json()["total"] == 1
    history = client.get("/api/v1/matches", params={"person_id": person}).json()
    assert {m["id"] for m in history["items"]} == strangers["colin_powell"]  # sightings of them now
    named = identify(client, identities["colin_powell"][7])["faces"][0]["match"]
    assert named is not None and named["person_id"] == person
    audit = client.get("/api/v1/audit", params={"action": "suggestion_enrolled"}).json()["items"]
    assert audit[0]["target"] == person


def test_enroll_onto_an_existing_person(client: TestClient, strangers: dict[str, set[int]]) -> None:
    shown = _by_members(client, strangers)
    made = client.post(f"/api/v1/suggestions/{shown['colin_powell']}/enroll", json={"name": "Someone"}).json()
    response = client.post(
        f"/api/v1/suggestions/{shown['george_w_bush']}/enroll", json={"person_id": made["person"]["id"]}
    )
    assert response.status_code == 201
    assert response.json()["person"]["face_count"] == made["faces_added"] + response.json()["faces_added"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "name_or_person_id"),
        ({"name": "A", "person_id": UNKNOWN_ID}, 400, "name_or_person_id"),
        ({"person_id": UNKNOWN_ID}, 404, "person_not_found"),
        ({"name": ""}, 422, None),
        ({"name": "A", "other": 1}, 422, None),
    ],
    ids=["neither", "both", "unknown-person", "empty-name", "extra-field"],
)
def test_enroll_refuses_bad_input_and_stores_nothing(
    client: TestClient, strangers: dict[str, set[int]], body: dict[str, object], status: int, code: str | None
) -> None:
    suggestion = _by_members(client, strangers)["colin_powell"]
    response = client.post(f"/api/v1/suggestions/{suggestion}/enroll", json=body)
    assert response.status_code == status
    if code:
        assert response.json()["error"]["code"] == code
    assert client.get("/api/v1/people").json()["total"] == 0
    assert client.get(f"/api/v1/suggestions/{suggestion}").status_code == 200


def test_dismiss(client: TestClient, strangers: dict[str, set[int]]) -> None:
    suggestion = _by_members(client, strangers)["colin_powell"]
    assert client.delete(f"/api/v1/suggestions/{suggestion}").status_code == 204
    assert client.get("/api/v1/suggestions").json()["total"] == 1
    assert client.get(f"/api/v1/suggestions/{suggestion}").status_code == 404
    assert client.delete(f"/api/v1/suggestions/{suggestion}").json()["error"]["code"] == "suggestion_not_found"


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
def test_unknown_suggestion_is_404(client: TestClient, method: str) -> None:
    path = f"/api/v1/suggestions/{UNKNOWN_ID}" + ("/enroll" if method == "POST" else "")
    response = client.request(method, path, json={"name": "A"} if method == "POST" else None)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "suggestion_not_found"


def test_scopes(client: TestClient, runtime: Runtime) -> None:
    read = keys_service.create_key(runtime, name="reader", scopes=["read"]).secret
    assert client.get("/api/v1/suggestions", headers={"X-API-Key": read}).status_code == 200
    response = client.delete(f"/api/v1/suggestions/{UNKNOWN_ID}", headers={"X-API-Key": read})
    assert response.status_code == 403
    assert client.get("/api/v1/suggestions", headers={"X-API-Key": ""}).status_code == 401
