"""POST /api/v1/compare: 1:1 verification of the largest face in each of two photos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facegate.services.runtime import Runtime
from tests.support import assert_nothing_stored, image_field


def _compare(client: TestClient, a: Path, b: Path, **data: str) -> tuple[int, dict[str, Any]]:
    response = client.post("/api/v1/compare", files=[image_field(a, "image_a"), image_field(b, "image_b")], data=data)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("a", "b"),
    [("colin_powell/1.jpg", "colin_powell/2.jpg"), ("barack_obama/1.jpg", "barack_obama/3.jpg")],
)
def test_same_person(client: TestClient, runtime: Runtime, dev: Path, a: str, b: str) -> None:
    status, body = _compare(client, dev / a, dev / b)
    assert status == 200, body
    assert body["same"] is True
    assert body["distance"] <= body["threshold"]
    assert 0.5 <= body["confidence"] <= 1.0
    assert set(body["box_a"]) == {"left", "top", "width", "height"}
    assert_nothing_stored(runtime)  # comparing records nothing


@pytest.mark.parametrize(
    ("a", "b"),
    [("colin_powell/1.jpg", "george_w_bush/1.jpg"), ("barack_obama/1.jpg", "joe_biden/1.jpg")],
)
def test_different_people(client: TestClient, dev: Path, a: str, b: str) -> None:
    status, body = _compare(client, dev / a, dev / b)
    assert status == 200, body
    assert body["same"] is False
    assert body["distance"] > body["threshold"]
    assert 0.0 <= body["confidence"] < 0.5


def test_same_photo_is_distance_zero(client: TestClient, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    _, body = _compare(client, photo, photo)
    assert body["same"] is True
    assert body["distance"] == pytest.approx(0.0, abs=1e-3)
    assert body["box_a"] == body["box_b"]


def test_threshold_can_be_given(client: TestClient, dev: Path) -> None:
    _, default = _compare(client, dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg")
    strict = str(float(default["distance"]) / 2)
    _, body = _compare(client, dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg", threshold=strict)
    assert body["same"] is False
    assert body["distance"] == default["distance"]


@pytest.mark.parametrize("threshold", ["5e-324", "0"])
def test_a_vanishing_threshold_is_an_invalid_field(client: TestClient, dev: Path, threshold: str) -> None:
    # 5e-324 is above zero, but a tenth of it is 0.0: the confidence curve divided by zero, a 500 (schemathesis).
    status, body = _compare(client, dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg", threshold=threshold)
    assert status == 422
    assert body["error"]["code"] == "invalid_field"
    assert "threshold" in body["error"]["message"]


def test_largest_face_of_a_group_photo_is_compared(client: TestClient, dev: Path) -> None:
    # couple.jpg's largest face is the deepface_person_01 woman (see the dev set README).
    status, body = _compare(client, dev / "multi" / "couple.jpg", dev / "deepface_person_01" / "2.jpg")
    assert status == 200
    assert body["same"] is True


@pytest.mark.parametrize("missing", ["image_a", "image_b"])
def test_no_face_names_the_image(client: TestClient, dev: Path, missing: str) -> None:
    face, banana = dev / "colin_powell" / "1.jpg", dev / "noface" / "banana.jpg"
    a, b = (banana, face) if missing == "image_a" else (face, banana)
    status, body = _compare(client, a, b)
    assert status == 422
    error = body["error"]
    assert error["code"] == "no_face"
    assert missing in error["message"]


def test_unreadable_image(client: TestClient, dev: Path) -> None:
    response = client.post(
        "/api/v1/compare",
        files=[image_field(dev / "colin_powell" / "1.jpg", "image_a"), ("image_b", ("b.txt", b"words", "text/plain"))],
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_image"


@pytest.mark.parametrize("threshold", ["0", "2", "x"])
def test_threshold_out_of_range(client: TestClient, dev: Path, threshold: str) -> None:
    status, body = _compare(client, dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg", threshold=threshold)
    assert status == 422
    assert body["error"]["code"] == "invalid_field"
