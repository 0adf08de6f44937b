"""One error shape everywhere: {"error": {"code", "message"}}, with the status the contract names."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facegate.api.errors import STATUS_OF, error_body, status_of
from facegate.app import create_app
from facegate.errors import (
    Conflict,
    FacegateError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    Unprocessable,
    UnsupportedImage,
)
from facegate.services.runtime import Runtime
from facegate.store.blobs import FileBlobStore
from tests.support import assert_nothing_stored, image_field


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (PayloadTooLarge("x"), 413),
        (UnsupportedImage("x"), 415),
        (Unprocessable("x"), 422),
        (Unavailable("x"), 503),
        (FacegateError("x"), 500),
    ],
)
def test_each_error_class_has_its_status(error: FacegateError, status: int) -> None:
    assert status_of(error) == status


def test_subclass_of_a_mapped_error_gets_its_parents_status() -> None:
    class PersonGone(NotFound):
        code = "person_gone"

    assert status_of(PersonGone("x")) == 404
    assert PersonGone not in STATUS_OF


def test_error_code_can_be_given_per_instance() -> None:
    error = NotFound("No person.", code="person_not_found")
    assert (error.code, error.message, str(error)) == ("person_not_found", "No person.", "No person.")
    assert NotFound("x").code == "not_found"


def test_error_body_shape() -> None:
    assert error_body("no_face", "No face.", field="image") == {
        "error": {"code": "no_face", "message": "No face.", "field": "image"}
    }


def test_unknown_route_is_json_not_found(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_method_not_allowed(client: TestClient) -> None:
    response = client.get("/api/v1/enroll")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/api/v1/keys", "GET, POST"),
        ("PUT", "/api/v1/people/someone", "DELETE, GET, PATCH"),
        ("POST", "/health", "GET"),
    ],
)
def test_method_not_allowed_lists_every_method(client: TestClient, method: str, path: str, allowed: str) -> None:
    # Starlette named only the first matching route's methods (`Allow: GET` for /api/v1/keys); schemathesis.
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_missing_field_names_the_field(client: TestClient) -> None:
    response = client.post("/api/v1/compare", files=[("image_a", ("a.jpg", b"x", "image/jpeg"))])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "missing_field"
    assert error["field"] == "image_b"
    assert error["message"].startswith("image_b:")
    assert error["details"][0]["field"] == "body.image_b"


def test_invalid_query_value_is_invalid_field(client: TestClient) -> None:
    response = client.get("/api/v1/people", params={"limit": 0})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_field"
    assert error["field"] == "limit"


def test_invalid_json_body_is_invalid_field(client: TestClient) -> None:
    response = client.patch(
        "/api/v1/people/someone", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_field"


class _FullDisk(FileBlobStore):
    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        raise OSError(28, "No space left on device (injected)")


def test_unexpected_failure_is_a_json_500_and_stores_nothing(runtime: Runtime, admin_key: str, dev: Path) -> None:
    # A blob write failing in the middle of an enrollment, seen from the client.
    photo = dev / "colin_powell" / "1.jpg"
    real = runtime.blobs
    runtime.blobs = _FullDisk(runtime.settings.blob_path)
    app = create_app(runtime=runtime)
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": admin_key}) as client:
        response = client.post("/api/v1/enroll", files=[image_field(photo)], data={"name": "Colin Powell"})

        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": {"code": "internal_error", "message": "An unexpected error occurred."}}
        assert "No space" not in response.text  # no internals leak to the client
        assert_nothing_stored(runtime)

        runtime.blobs = real
        again = client.post("/api/v1/enroll", files=[image_field(photo)], data={"name": "Colin Powell"})
        assert again.status_code == 201


def test_text_the_database_cannot_hold_is_a_client_error(client: TestClient, runtime: Runtime, dev: Path) -> None:
    """A NUL character is fine in SQLite and refused by PostgreSQL: never a 500, and nothing stored."""
    listing = client.get("/api/v1/people", params={"name": "a\x00b"})
    assert listing.status_code in (200, 400), listing.text
    enrolled = client.post(
        "/api/v1/enroll", files=[image_field(dev / "colin_powell" / "1.jpg")], data={"name": "Colin\x00 Powell"}
    )
    assert enrolled.status_code in (201, 400), enrolled.text
    if enrolled.status_code == 400:
        assert enrolled.json()["error"]["code"] == "invalid_value"
        assert_nothing_stored(runtime)
    assert client.get("/api/v1/people/x%00y").status_code in (400, 404)
