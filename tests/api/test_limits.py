"""Request limits: bytes per request body (declared or streamed) and pixels per image (from the header)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facegate.config import LimitSettings
from tests.api.conftest import ClientFactory
from tests.support import assert_nothing_stored, image_field, png_declaring

LIMIT = 100_000


def _multipart(client: TestClient, photo: Path, name: str) -> tuple[bytes, str]:
    """The exact multipart body (and its content type) that a form post of `photo` would send."""
    request = client.build_request("POST", "/api/v1/enroll", files=[image_field(photo)], data={"name": name})
    return request.read(), request.headers["content-type"]


def _chunks(body: bytes, size: int = 16_384) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def big_photo(dev: Path) -> Path:
    photo = dev / "barack_obama" / "1.jpg"
    assert photo.stat().st_size > LIMIT
    return photo


@pytest.fixture
def small_photo(dev: Path) -> Path:
    photo = dev / "colin_powell" / "1.jpg"
    assert photo.stat().st_size < LIMIT // 2
    return photo


def test_declared_body_over_the_limit_is_refused_before_reading(make_client: ClientFactory, big_photo: Path) -> None:
    client, rt = make_client(limits=LimitSettings(max_upload_bytes=LIMIT))
    response = client.post("/api/v1/enroll", files=[image_field(big_photo)], data={"name": "x"})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert str(LIMIT) in response.json()["error"]["message"]
    assert_nothing_stored(rt)


def test_streamed_body_without_length_over_the_limit_is_refused(make_client: ClientFactory, big_photo: Path) -> None:
    client, rt = make_client(limits=LimitSettings(max_upload_bytes=LIMIT))
    body, content_type = _multipart(client, big_photo, "x")

    response = client.post("/api/v1/enroll", content=_chunks(body), headers={"Content-Type": content_type})

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert_nothing_stored(rt)


def test_streamed_body_under_the_limit_is_accepted(make_client: ClientFactory, small_photo: Path) -> None:
    client, rt = make_client(limits=LimitSettings(max_upload_bytes=LIMIT))
    body, content_type = _multipart(client, small_photo, "Colin Powell")

    response = client.post("/api/v1/enroll", content=_chunks(body), headers={"Content-Type": content_type})

    assert response.status_code == 201, response.text
    assert len(rt.index) == 1


def test_byte_limit_applies_to_identify_too(make_client: ClientFactory, big_photo: Path) -> None:
    client, rt = make_client(limits=LimitSettings(max_upload_bytes=LIMIT))
    response = client.post("/api/v1/identify", files=[image_field(big_photo)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert_nothing_stored(rt)


def test_real_photo_over_a_configured_pixel_limit(make_client: ClientFactory, small_photo: Path) -> None:
    client, rt = make_client(limits=LimitSettings(max_image_pixels=10_000))  # the photo is 250x250

    enrolled = client.post("/api/v1/enroll", files=[image_field(small_photo)], data={"name": "x"})
    identified = client.post("/api/v1/identify", files=[image_field(small_photo)])
    compared = client.post(
        "/api/v1/compare", files=[image_field(small_photo, "image_a"), image_field(small_photo, "image_b")]
    )

    for response in (enrolled, identified, compared):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "image_too_large"
    assert "250x250" in enrolled.json()["error"]["message"]
    assert_nothing_stored(rt)


def test_pixel_limit_is_read_from_the_header_of_a_tiny_file(client: TestClient) -> None:
    bomb = png_declaring(60_000, 60_000)
    assert len(bomb) < 200
    response = client.post("/api/v1/identify", files=[("image", ("bomb.png", bomb, "image/png"))])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "image_too_large"
