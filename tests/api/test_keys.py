"""/api/v1/keys/me: any valid key learns its own name and scopes (the web client hides what they do not
allow), never the secret; and any key can revoke itself."""

from __future__ import annotations

from fastapi.testclient import TestClient

from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime


def test_me_names_the_calling_key(client: TestClient, runtime: Runtime) -> None:
    created = keys_service.create_key(runtime, name="kiosk", scopes=["identify"])
    response = client.get("/api/v1/keys/me", headers={"X-API-Key": created.secret})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created.key.id and body["name"] == "kiosk" and body["scopes"] == ["identify"]
    assert created.secret not in response.text
    assert client.get("/api/v1/keys/me").json()["scopes"] == ["admin"]  # the client's own admin key


def test_me_refuses_a_bad_or_revoked_key(client: TestClient, runtime: Runtime) -> None:
    created = keys_service.create_key(runtime, name="old", scopes=["read"])
    keys_service.revoke_key(runtime, created.key.id)
    for key in (created.secret, "fg_" + "x" * 32):
        response = client.get("/api/v1/keys/me", headers={"X-API-Key": key})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_key_revokes_itself(client: TestClient, runtime: Runtime) -> None:
    created = keys_service.create_key(runtime, name="leaked", scopes=["identify"])
    headers = {"X-API-Key": created.secret}
    assert client.delete("/api/v1/keys/me", headers=headers).status_code == 204
    assert client.get("/api/v1/keys/me", headers=headers).status_code == 401
    assert client.get("/api/v1/keys/me").status_code == 200  # the others go on working
    entry = client.get("/api/v1/audit", params={"action": "key_revoked"}).json()["items"][0]
    assert entry["target"] == created.key.id and entry["key_id"] == created.key.id
