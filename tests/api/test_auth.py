"""api.auth: every route needs a key with its scope (the matrix is built from the app's own route table),
keys are shown once and stored hashed, revocation and expiry hold at once, failures are rate limited."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from facegate.app import create_app
from facegate.config import Scope
from facegate.services import keys as keys_service
from facegate.services.runtime import Runtime
from facegate.store.models import ApiKeyRecord
from tests.support import sql

# Routes anyone may call: liveness and readiness probes, the docs page and its assets (they hold no data).
PUBLIC = {("/health", "GET"), ("/ready", "GET"), ("/", "GET"), ("/docs", "GET"), ("/docs/facegate.js", "GET")}
SCOPES: list[Scope] = ["admin", "enroll", "identify", "read"]


def _required_scope(route: APIRoute) -> tuple[bool, Scope | None]:
    """(has an auth dependency, the scope it requires) from the route's dependency tree."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependant = stack.pop()
        call = dependant.call
        if call is not None and hasattr(call, "required_scope"):
            return True, call.required_scope
        stack.extend(dependant.dependencies)
    return False, None


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI wraps each included router
            yield from _api_routes(route.original_router.routes)


def _routes() -> list[tuple[str, str, Scope | None]]:
    app = create_app()
    found = []
    for route in _api_routes(app.routes):
        for method in route.methods:
            if (route.path, method) in PUBLIC:
                continue
            has_auth, scope = _required_scope(route)
            assert has_auth, f"{method} {route.path} has no auth dependency: add Depends(require(...)) to it"
            found.append((route.path, method, scope))
    return found


ROUTES = _routes()


def _url(path: str) -> str:
    # Ids that exist nowhere: authorization is decided before the handler looks anything up.
    url = re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1) in ("face_id", "match_id") else "none", path)
    # The event stream stays open until the client leaves: bounded here.
    return f"{url}?max_seconds=0.01" if path == "/api/v1/events" else url


def test_every_route_but_the_public_ones_requires_a_key() -> None:
    paths = {(p, m) for p, m, _ in ROUTES}
    assert ("/api/v1/identify", "POST") in paths and ("/api/v1/keys", "POST") in paths
    assert ("/metrics", "GET") in paths and ("/openapi.json", "GET") in paths


@pytest.fixture
def keys(runtime: Runtime) -> dict[Scope, str]:
    return {scope: keys_service.create_key(runtime, name=scope, scopes=[scope]).secret for scope in SCOPES}


@pytest.fixture
def anonymous(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime)) as client:
        yield client


def _call(client: TestClient, method: str, path: str, key: str | None, **kwargs: Any) -> int:
    headers = {"X-API-Key": key} if key else {}
    return client.request(method, _url(path), headers=headers, **kwargs).status_code


@pytest.mark.parametrize(("path", "method", "scope"), ROUTES, ids=[f"{m} {p}" for p, m, _ in ROUTES])
def test_scope_matrix(
    anonymous: TestClient, keys: dict[Scope, str], path: str, method: str, scope: Scope | None
) -> None:
    no_key = anonymous.request(method, _url(path))
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "missing_api_key"
    assert "WWW-Authenticate" in no_key.headers
    assert _call(anonymous, method, path, "fg_" + "x" * 32) == 401
    for holder, key in keys.items():
        status = _call(anonymous, method, path, key)
        allowed = scope is None or holder in (scope, "admin")
        if allowed:
            assert status not in (401, 403), (holder, status)
        else:
            assert status == 403, (holder, status)


def test_bearer_works_like_the_header(anonymous: TestClient, keys: dict[Scope, str]) -> None:
    response = anonymous.get("/api/v1/people", headers={"Authorization": f"Bearer {keys['read']}"})
    assert response.status_code == 200
    assert response.headers["RateLimit-Limit"] == "600"
    assert int(response.headers["RateLimit-Remaining"]) == 599
    assert anonymous.get("/api/v1/people", headers={"Authorization": "Basic abc"}).status_code == 401


def test_keys_are_random_shown_once_and_stored_only_as_a_keyed_hash(client: TestClient, runtime: Runtime) -> None:
    created = client.post("/api/v1/keys", json={"name": "camera 1", "scopes": ["identify"]})
    assert created.status_code == 201
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("fg_") and len(secret) >= 3 + 32  # 192 random bits
    assert body["key"]["scopes"] == ["identify"] and body["key"]["prefix"] == secret[:11]
    listed = client.get("/api/v1/keys").json()
    assert secret not in str(listed)
    with sql(runtime).db.session() as session:
        stored = session.scalars(select(ApiKeyRecord).where(ApiKeyRecord.id == body["key"]["id"])).one()
    assert secret not in str(vars(stored))
    assert stored.key_hash != hashlib.sha256(secret.encode()).hexdigest()  # keyed (HMAC), not a bare hash
    assert stored.key_hash == keys_service.hash_key(runtime, secret)


def test_revoked_key_stops_at_once(client: TestClient, anonymous: TestClient) -> None:
    body = client.post("/api/v1/keys", json={"name": "temp", "scopes": ["read"]}).json()
    assert _call(anonymous, "GET", "/api/v1/people", body["secret"]) == 200
    assert client.delete(f"/api/v1/keys/{body['key']['id']}").status_code == 204
    assert _call(anonymous, "GET", "/api/v1/people", body["secret"]) == 401
    revoked = {k["id"]: k for k in client.get("/api/v1/keys").json()}[body["key"]["id"]]
    assert revoked["revoked_at"] is not None
    assert client.delete("/api/v1/keys/nope").status_code == 404


def test_revocation_holds_across_replicas(runtime: Runtime, client: TestClient) -> None:
    """Two apps over one store stand for two replicas: a key revoked on one fails on the other at once."""
    body = client.post("/api/v1/keys", json={"name": "shared", "scopes": ["read"]}).json()
    with TestClient(create_app(runtime=runtime)) as other:
        assert _call(other, "GET", "/api/v1/people", body["secret"]) == 200
        client.delete(f"/api/v1/keys/{body['key']['id']}")
        assert _call(other, "GET", "/api/v1/people", body["secret"]) == 401


def test_expired_key_fails(runtime: Runtime, anonymous: TestClient) -> None:
    created = keys_service.create_key(
        runtime, name="short", scopes=["read"], expires_at=datetime.now(UTC) + timedelta(seconds=60)
    )
    assert _call(anonymous, "GET", "/api/v1/people", created.secret) == 200
    with sql(runtime).db.session() as session:
        record = session.get_one(ApiKeyRecord, created.key.id)
        record.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert _call(anonymous, "GET", "/api/v1/people", created.secret) == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "scopes": ["read"], "extra": 1},
    ],
)
def test_bad_key_requests_are_client_errors(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/api/v1/keys", json=body)
    assert response.status_code in (400, 422), response.text
    assert "error" in response.json()


def test_last_used_is_recorded(client: TestClient, anonymous: TestClient, runtime: Runtime) -> None:
    body = client.post("/api/v1/keys", json={"name": "u", "scopes": ["read"]}).json()
    assert body["key"]["last_used_at"] is None
    _call(anonymous, "GET", "/api/v1/people", body["secret"])
    listed = {k["id"]: k for k in client.get("/api/v1/keys").json()}
    assert listed[body["key"]["id"]]["last_used_at"] is not None


def test_bootstrap_creates_one_admin_key_on_an_empty_store_only(runtime: Runtime) -> None:
    first = keys_service.ensure_bootstrap_key(runtime)
    assert first is not None and first.startswith("fg_")
    assert keys_service.ensure_bootstrap_key(runtime) is None
    [row] = runtime.store.keys.list_keys()
    assert row.scopes == ["admin"]
    assert keys_service.authenticate(runtime, first) is not None


def test_configured_bootstrap_key(runtime: Runtime) -> None:
    key = "deployment-provided-key-0123456789"
    runtime.settings.auth.bootstrap_key = SecretStr(key)
    assert keys_service.ensure_bootstrap_key(runtime) is None  # not printed: the deployment knows it
    row = keys_service.authenticate(runtime, key)
    assert row is not None and row.scopes == ["admin"]


def test_failed_authentication_is_rate_limited_per_address(runtime: Runtime) -> None:
    runtime.settings.rate_limit.failed_auth = "3/minute"
    with TestClient(create_app(runtime=runtime)) as client:
        statuses = [client.get("/api/v1/people", headers={"X-API-Key": "fg_wrong"}).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        blocked = client.get("/api/v1/people", headers={"X-API-Key": "fg_wrong"})
        assert blocked.json()["error"]["code"] == "rate_limited"
        assert int(blocked.headers["Retry-After"]) >= 1


def test_keys_are_rate_limited_per_scope(runtime: Runtime) -> None:
    runtime.settings.rate_limit.default = "2/minute"
    runtime.settings.rate_limit.scopes = {"read": "3/minute"}
    key = keys_service.create_key(runtime, name="limited", scopes=["admin"]).secret
    with TestClient(create_app(runtime=runtime), headers={"X-API-Key": key}) as client:
        assert [client.get("/api/v1/people").status_code for _ in range(4)] == [200, 200, 200, 429]
        # Another scope's routes count separately, under the default.
        assert [client.get("/api/v1/keys").status_code for _ in range(3)] == [200, 200, 429]
        limited = client.get("/api/v1/people")
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1


def test_audit_log_records_who_did_what(client: TestClient, anonymous: TestClient, runtime: Runtime) -> None:
    created = client.post("/api/v1/keys", json={"name": "auditor", "scopes": ["enroll"]}).json()
    client.delete(f"/api/v1/keys/{created['key']['id']}")
    entries = client.get("/api/v1/audit").json()
    actions = [e["action"] for e in entries["items"]]
    assert actions[:2] == ["key_revoked", "key_created"]
    assert all(e["address"] and e["key_id"] for e in entries["items"])
    assert created["secret"] not in str(entries)
    only = client.get("/api/v1/audit", params={"action": "key_created"}).json()
    assert only["total"] == 1
    # Admins only.
    read = keys_service.create_key(runtime, name="r", scopes=["read"]).secret
    assert _call(anonymous, "GET", "/api/v1/audit", read) == 403


def test_public_metrics_and_docs_when_configured(runtime: Runtime, anonymous: TestClient) -> None:
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/openapi.json").status_code == 401
    runtime.settings.auth.public_metrics = True
    runtime.settings.auth.public_docs = True
    assert anonymous.get("/metrics").status_code == 200
    assert anonymous.get("/openapi.json").status_code == 200


def test_security_headers(client: TestClient) -> None:
    response = client.get("/api/v1/people")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_cors_is_off_by_default_and_configurable(runtime: Runtime, admin_key: str) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.options("/api/v1/people", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    runtime.settings.cors.origins = ["https://app.example"]
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.options("/api/v1/people", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://app.example"
