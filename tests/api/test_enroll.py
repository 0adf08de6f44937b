"""POST /api/v1/enroll: new people, faces added to existing ones, and every way a request is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facegate.config import EnrollSettings
from facegate.services.runtime import Runtime
from tests.api.conftest import ClientFactory
from tests.support import (
    assert_nothing_stored,
    blank_jpeg,
    blob_files,
    enroll,
    image_field,
    png_declaring,
    row_counts,
    truncated,
)


def test_enroll_new_person_stores_rows_blob_and_index_entry(client: TestClient, runtime: Runtime, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    body = enroll(client, [photo], name="Colin Powell")

    person = body["person"]
    assert person["name"] == "Colin Powell"
    assert person["face_count"] == 1
    assert person["external_id"] is None
    assert person["metadata"] == {}
    assert body["rejected"] == []
    [face] = body["faces"]
    assert face["filename"] == "1.jpg"
    assert 0 < face["quality"] <= 1
    box = face["box"]
    with Image.open(photo) as img:
        width, height = img.size
    assert box["left"] >= 0 and box["left"] + box["width"] <= width
    assert box["top"] >= 0 and box["top"] + box["height"] <= height
    assert box["width"] >= 40 and box["height"] >= 40

    assert row_counts(runtime) == {"people": 1, "images": 1, "faces": 1, "matches": 0}
    [blob] = blob_files(runtime)
    assert blob.read_bytes() == photo.read_bytes()
    assert blob.suffix == ".jpg"
    assert len(runtime.index) == 1
    assert client.get(f"/api/v1/people/{person['id']}").json() == person


def test_enroll_keeps_metadata_and_external_id(client: TestClient, dev: Path) -> None:
    body = enroll(
        client,
        [dev / "george_w_bush" / "1.jpg"],
        name="George W. Bush",
        metadata=json.dumps({"team": "blue", "floor": 3}),
        external_id="emp-43",
    )
    assert body["person"]["metadata"] == {"team": "blue", "floor": 3}
    assert body["person"]["external_id"] == "emp-43"


def test_enroll_several_photos_enrolls_each_usable_one(client: TestClient, runtime: Runtime, dev: Path) -> None:
    photos = [dev / "donald_rumsfeld" / f"{n}.jpg" for n in (1, 2, 3)]
    body = enroll(client, [*photos, dev / "noface" / "banana.jpg"], name="Donald Rumsfeld")

    assert body["person"]["face_count"] == 3
    assert sorted(f["filename"] for f in body["faces"]) == ["1.jpg", "2.jpg", "3.jpg"]
    assert [(r["filename"], r["reason"]) for r in body["rejected"]] == [("banana.jpg", "no_face")]
    assert row_counts(runtime)["images"] == 3
    assert len(blob_files(runtime)) == 3
    assert len(runtime.index) == 3


def test_enroll_picks_the_dominant_face_of_a_photo_with_a_small_background_face(client: TestClient, dev: Path) -> None:
    # LFW crop with a second, much smaller face behind the subject (see the dev set README).
    body = enroll(client, [dev / "arnold_schwarzenegger" / "5.jpg"], name="Arnold")
    [face] = body["faces"]
    centre_x = face["box"]["left"] + face["box"]["width"] / 2
    centre_y = face["box"]["top"] + face["box"]["height"] / 2
    assert abs(centre_x - 125) < 40 and abs(centre_y - 125) < 40  # the central face of the 250x250 crop


def test_add_faces_to_existing_person_increments_face_count(client: TestClient, runtime: Runtime, dev: Path) -> None:
    first = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")
    person_id = first["person"]["id"]

    more = enroll(client, [dev / "colin_powell" / "2.jpg", dev / "colin_powell" / "3.jpg"], person_id=person_id)

    assert more["person"]["id"] == person_id
    assert more["person"]["face_count"] == 3
    assert len(more["faces"]) == 2
    assert client.get(f"/api/v1/people/{person_id}").json()["face_count"] == 3
    assert row_counts(runtime) == {"people": 1, "images": 3, "faces": 3, "matches": 0}
    assert len(runtime.index) == 3


def test_same_photo_again_for_same_person_is_rejected_as_duplicate(
    client: TestClient, runtime: Runtime, dev: Path
) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    person_id = enroll(client, [photo], name="Colin Powell")["person"]["id"]
    before = row_counts(runtime), blob_files(runtime), len(runtime.index)

    only_duplicate = enroll(client, [photo], person_id=person_id, status=422)
    assert only_duplicate["error"]["code"] == "duplicate_image"
    assert (row_counts(runtime), blob_files(runtime), len(runtime.index)) == before

    mixed = enroll(client, [photo, dev / "colin_powell" / "2.jpg"], person_id=person_id)
    assert [(r["filename"], r["reason"]) for r in mixed["rejected"]] == [("1.jpg", "duplicate_image")]
    assert mixed["person"]["face_count"] == 2


def test_same_photo_twice_in_one_request_is_enrolled_once(client: TestClient, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    body = enroll(client, [photo, photo], name="Colin Powell")
    assert body["person"]["face_count"] == 1
    assert [r["reason"] for r in body["rejected"]] == ["duplicate_image"]


def test_same_photo_may_be_enrolled_for_two_people(client: TestClient, dev: Path) -> None:
    # Duplicates are per person: another record for the same photo is the caller's business.
    photo = dev / "colin_powell" / "1.jpg"
    enroll(client, [photo], name="First")
    assert enroll(client, [photo], name="Second")["person"]["face_count"] == 1


# Each refused request: how to build it, the status, the error code. Nothing may be stored by any of them.
Request = Callable[[Path], tuple[list[tuple[str, tuple[str, bytes, str]]], dict[str, str]]]


def _photo(dev: Path) -> Path:
    return dev / "colin_powell" / "1.jpg"


BAD_REQUESTS: dict[str, tuple[Request, int, str]] = {
    "not an image": (
        lambda dev: ([("image", ("notes.txt", b"these are not pixels\n" * 20, "text/plain"))], {"name": "x"}),
        415,
        "unsupported_image",
    ),
    "truncated jpeg": (
        lambda dev: ([image_field(_photo(dev), data=truncated(_photo(dev)))], {"name": "x"}),
        415,
        "unreadable_image",
    ),
    "empty file": (
        lambda dev: ([("image", ("empty.jpg", b"", "image/jpeg"))], {"name": "x"}),
        415,
        "unreadable_image",
    ),
    "pixel count over the limit (header only)": (
        lambda dev: ([("image", ("huge.png", png_declaring(8000, 6000), "image/png"))], {"name": "x"}),
        413,
        "image_too_large",
    ),
    "decompression bomb header": (
        lambda dev: ([("image", ("bomb.png", png_declaring(100_000, 100_000), "image/png"))], {"name": "x"}),
        413,
        "image_too_large",
    ),
    "no image field": (lambda dev: ([], {"name": "x"}), 422, "missing_field"),
    "neither name nor person_id": (lambda dev: ([image_field(_photo(dev))], {}), 400, "name_or_person_id"),
    "both name and person_id": (
        lambda dev: ([image_field(_photo(dev))], {"name": "x", "person_id": "abc"}),
        400,
        "name_or_person_id",
    ),
    "blank name": (lambda dev: ([image_field(_photo(dev))], {"name": "   "}), 400, "invalid_name"),
    "metadata not JSON": (
        lambda dev: ([image_field(_photo(dev))], {"name": "x", "metadata": "{team: blue"}),
        400,
        "invalid_metadata",
    ),
    "metadata not an object": (
        lambda dev: ([image_field(_photo(dev))], {"name": "x", "metadata": "[1, 2]"}),
        400,
        "invalid_metadata",
    ),
    "unknown person_id": (
        lambda dev: ([image_field(_photo(dev))], {"person_id": "00000000-0000-0000-0000-000000000000"}),
        404,
        "person_not_found",
    ),
    "no face": (lambda dev: ([image_field(dev / "noface" / "banana.jpg")], {"name": "x"}), 422, "no_face"),
    "synthetic image without a face": (
        lambda dev: ([("image", ("noise.jpg", blank_jpeg(), "image/jpeg"))], {"name": "x"}),
        422,
        "no_face",
    ),
    "two comparable faces": (
        lambda dev: ([image_field(dev / "multi" / "two_people.jpg")], {"name": "x"}),
        422,
        "multiple_faces",
    ),
    "two comparable faces, close-up": (
        lambda dev: ([image_field(dev / "multi" / "couple.jpg")], {"name": "x"}),
        422,
        "multiple_faces",
    ),
    "too many images": (
        lambda dev: ([("image", (f"{i}.jpg", blank_jpeg(64, 64), "image/jpeg")) for i in range(21)], {"name": "x"}),
        400,
        "too_many_images",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_refused_enrollment_stores_nothing(client: TestClient, runtime: Runtime, dev: Path, case: str) -> None:
    build, status, code = BAD_REQUESTS[case]
    files, data = build(dev)
    response = client.post("/api/v1/enroll", files=files or None, data=data)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert_nothing_stored(runtime)


def test_every_photo_unusable_names_the_most_specific_reason(client: TestClient, runtime: Runtime, dev: Path) -> None:
    body = enroll(client, [dev / "noface" / "banana.jpg", dev / "multi" / "two_people.jpg"], name="x", status=422)
    assert body["error"]["code"] == "multiple_faces"
    assert "banana.jpg" in body["error"]["message"] and "two_people.jpg" in body["error"]["message"]
    assert_nothing_stored(runtime)


def test_unreadable_photo_among_good_ones_is_reported_not_fatal(client: TestClient, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    response = client.post(
        "/api/v1/enroll",
        files=[image_field(photo), image_field(dev / "colin_powell" / "2.jpg", data=truncated(photo))],
        data={"name": "Colin Powell"},
    )
    assert response.status_code == 201, response.text
    assert [(r["filename"], r["reason"]) for r in response.json()["rejected"]] == [("2.jpg", "unreadable_image")]


def test_external_id_in_use_is_a_conflict_and_stores_nothing_more(
    client: TestClient, runtime: Runtime, dev: Path
) -> None:
    enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell", external_id="emp-1")
    before: tuple[Any, ...] = (row_counts(runtime), blob_files(runtime), len(runtime.index))

    body = enroll(client, [dev / "george_w_bush" / "1.jpg"], name="George W. Bush", external_id="emp-1", status=409)

    assert body["error"]["code"] == "external_id_taken"
    assert (row_counts(runtime), blob_files(runtime), len(runtime.index)) == before


@pytest.mark.parametrize(
    ("policy", "photo", "code"),
    [
        (EnrollSettings(min_detector_score=0.99), "colin_powell/1.jpg", "low_quality"),
        (EnrollSettings(min_face_size=400), "colin_powell/1.jpg", "face_too_small"),
        (EnrollSettings(min_sharpness=1e9), "colin_powell/1.jpg", "blurry"),
        # A subject with a much smaller face behind: enrolled under "dominant", refused under "reject".
        (EnrollSettings(multiple_faces="reject"), "arnold_schwarzenegger/5.jpg", "multiple_faces"),
        (EnrollSettings(dominant_ratio=50.0), "arnold_schwarzenegger/5.jpg", "multiple_faces"),
    ],
)
def test_configured_enrollment_policy_refuses_the_photo(
    make_client: ClientFactory, dev: Path, policy: EnrollSettings, photo: str, code: str
) -> None:
    client, rt = make_client(enroll=policy)
    body = enroll(client, [dev / photo], name="x", status=422)
    assert body["error"]["code"] == code
    assert_nothing_stored(rt)
