"""/api/v1/people/{id}/faces: a person's faces, the photo each came from, and deleting one face."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from facegate.config import DlibEngineSettings, Settings
from facegate.services import reindex as reindex_service
from facegate.services.runtime import Runtime
from facegate.store.models import FaceRecord, ImageRecord
from facegate.vision.pool import EnginePool
from tests.support import blob_files, enroll, identify, pending_blob_count, row_counts, sql

UNKNOWN_PERSON = "00000000-0000-0000-0000-000000000000"


def _faces(client: TestClient, person_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/people/{person_id}/faces")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def powell(client: TestClient, dev: Path) -> str:
    """Colin Powell enrolled from two photos (two faces)."""
    body = enroll(client, [dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg"], name="Colin Powell")
    assert len(body["faces"]) == 2
    person_id: str = body["person"]["id"]
    return person_id


def test_list_faces_of_a_person(client: TestClient, runtime: Runtime, powell: str) -> None:
    started = datetime.now(UTC)
    body = _faces(client, powell)

    assert body["total"] == 2 == len(body["items"])
    for face in body["items"]:
        assert set(face) == {
            "id",
            "image_id",
            "box",
            "quality",
            "detector_score",
            "sharpness",
            "engine",
            "model_version",
            "created_at",
            "auto",
        }
        assert face["auto"] is False  # enrolled by a user, not added by auto-enrollment
        assert face["engine"] == "opencv" and face["model_version"]
        box = face["box"]
        assert set(box) == {"left", "top", "width", "height"}
        assert box["width"] >= 40 and box["height"] >= 40 and box["left"] >= 0 and box["top"] >= 0
        assert 0.0 < face["quality"] <= 1.0 and face["detector_score"] > 0 and face["sharpness"] > 0
        created = datetime.fromisoformat(face["created_at"])
        assert created.tzinfo is not None
        assert started - timedelta(minutes=5) < created <= datetime.now(UTC)
    # Oldest first, one photo each.
    assert body["items"][0]["id"] < body["items"][1]["id"]
    assert len({f["image_id"] for f in body["items"]}) == 2
    with sql(runtime).db.session() as session:
        stored = set(session.scalars(select(FaceRecord.id).where(FaceRecord.person_id == powell)))
    assert {f["id"] for f in body["items"]} == stored


def test_list_faces_of_an_unknown_person_is_404(client: TestClient) -> None:
    response = client.get(f"/api/v1/people/{UNKNOWN_PERSON}/faces")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "person_not_found"


def test_face_image_is_the_photo_as_uploaded(client: TestClient, dev: Path, powell: str) -> None:
    by_image = {f["image_id"]: f["id"] for f in _faces(client, powell)["items"]}
    for photo, face_id in zip(("1.jpg", "2.jpg"), sorted(by_image.values()), strict=True):
        response = client.get(f"/api/v1/people/{powell}/faces/{face_id}/image")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content == (dev / "colin_powell" / photo).read_bytes()


def _png(path: Path) -> bytes:
    buf = io.BytesIO()
    with Image.open(path) as img:
        img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("filename", "fmt"), [("photo", "jpeg"), ("photo.html", "jpeg"), ("photo.jpg", "png")], ids=["bare", "html", "png"]
)
def test_face_image_media_type_follows_the_photo_not_its_uploaded_name(
    client: TestClient, dev: Path, filename: str, fmt: str
) -> None:
    """The uploaded file name is the client's word; the photo's own format decides (a JPEG named .html must
    never be served as text/html)."""
    photo = dev / "colin_powell" / "1.jpg"
    data = photo.read_bytes() if fmt == "jpeg" else _png(photo)
    response = client.post("/api/v1/enroll", files=[("image", (filename, data, "image/jpeg"))], data={"name": "P"})
    assert response.status_code == 201, response.text
    person_id = response.json()["person"]["id"]
    face_id = response.json()["faces"][0]["id"]

    image = client.get(f"/api/v1/people/{person_id}/faces/{face_id}/image")

    assert image.status_code == 200
    assert image.headers["content-type"] == f"image/{fmt}"
    assert image.content == data


def test_another_persons_face_or_a_missing_face_is_404(client: TestClient, dev: Path, powell: str) -> None:
    bush = enroll(client, [dev / "george_w_bush" / "1.jpg"], name="George W. Bush")
    bush_face = bush["faces"][0]["id"]
    missing = max(f["id"] for f in _faces(client, powell)["items"]) + 1000
    for face_id in (bush_face, missing):
        for method, path in (
            ("GET", f"/api/v1/people/{powell}/faces/{face_id}/image"),
            ("DELETE", f"/api/v1/people/{powell}/faces/{face_id}"),
        ):
            response = client.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "face_not_found"
    # Nothing of Bush's was touched by the refused delete.
    assert _faces(client, bush["person"]["id"])["total"] == 1
    for method, path in (
        ("GET", f"/api/v1/people/{UNKNOWN_PERSON}/faces/{bush_face}/image"),
        ("DELETE", f"/api/v1/people/{UNKNOWN_PERSON}/faces/{bush_face}"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "person_not_found"


def test_face_id_out_of_range_or_not_an_integer_is_a_client_error(client: TestClient, powell: str) -> None:
    for face_id in ("0", "-1", str(2**31), "99999999999999999999", "abc", "1.5"):
        for method, suffix in (("GET", "/image"), ("DELETE", "")):
            response = client.request(method, f"/api/v1/people/{powell}/faces/{face_id}{suffix}")
            assert 400 <= response.status_code < 500, (method, face_id, response.text)
            assert response.json()["error"]["code"], (method, face_id)
    # The largest id allowed is a plain 404 on every store (PostgreSQL's integer ends there).
    largest = client.get(f"/api/v1/people/{powell}/faces/{2**31 - 1}/image")
    assert (largest.status_code, largest.json()["error"]["code"]) == (404, "face_not_found")
    assert _faces(client, powell)["total"] == 2


def test_delete_a_face_removes_its_photo_embedding_and_index_entry(
    client: TestClient, runtime: Runtime, dev: Path, powell: str
) -> None:
    probe = dev / "colin_powell" / "1.jpg"
    before = identify(client, probe)["faces"][0]["match"]
    assert before["person_id"] == powell
    first, second = sorted(_faces(client, powell)["items"], key=lambda f: f["id"])
    with sql(runtime).db.session() as session:
        image = session.get_one(ImageRecord, first["image_id"])
        key = image.blob_key
        vector = np.frombuffer(session.get_one(FaceRecord, first["id"]).embedding, dtype=np.float32)
    photo = runtime.settings.blob_path / key
    assert photo.is_file()
    files_before = set(blob_files(runtime))
    assert client.get(f"/api/v1/people/{powell}").json()["face_count"] == 2

    response = client.delete(f"/api/v1/people/{powell}/faces/{first['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert client.get(f"/api/v1/people/{powell}").json()["face_count"] == 1
    assert [f["id"] for f in _faces(client, powell)["items"]] == [second["id"]]
    assert not photo.exists()
    assert set(blob_files(runtime)) == files_before - {photo}
    with sql(runtime).db.session() as session:
        assert session.get(ImageRecord, first["image_id"]) is None
        assert session.scalars(select(FaceRecord).where(FaceRecord.image_id == first["image_id"])).all() == []
    assert pending_blob_count(runtime) == 0
    assert first["id"] not in {hit.face_id for hit in runtime.index.search(vector, 10)}
    # Before: the mean of his two nearest faces, 0 (the very photo) and the other one's distance. Now the same
    # photo finds Powell only through his other face, at that face's distance.
    after = identify(client, probe)["faces"][0]
    assert after["candidates"][0]["person_id"] == powell
    assert after["candidates"][0]["distance"] == pytest.approx(2 * before["distance"], abs=2e-4)
    assert client.get(f"/api/v1/people/{powell}/faces/{first['id']}/image").status_code == 404

    again = client.delete(f"/api/v1/people/{powell}/faces/{first['id']}")
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "face_not_found"


def test_deleting_the_last_face_keeps_the_person(client: TestClient, runtime: Runtime, dev: Path) -> None:
    body = enroll(client, [dev / "george_w_bush" / "1.jpg"], name="George W. Bush")
    person_id, face_id = body["person"]["id"], body["faces"][0]["id"]

    assert client.delete(f"/api/v1/people/{person_id}/faces/{face_id}").status_code == 204

    person = client.get(f"/api/v1/people/{person_id}")
    assert person.status_code == 200
    assert person.json()["face_count"] == 0 and person.json()["name"] == "George W. Bush"
    assert _faces(client, person_id) == {"items": [], "total": 0}
    assert row_counts(runtime) == {"people": 1, "images": 0, "faces": 0, "matches": 0}
    assert blob_files(runtime) == []
    assert pending_blob_count(runtime) == 0
    assert len(runtime.index) == 0
    assert identify(client, dev / "george_w_bush" / "1.jpg")["faces"][0]["match"] is None
    # The person can be given new faces again.
    again = enroll(client, [dev / "george_w_bush" / "1.jpg"], person_id=person_id)
    assert again["person"]["face_count"] == 1


def test_deleting_a_face_removes_every_engines_embedding_of_its_photo(
    client: TestClient, runtime: Runtime, settings: Settings, dlib_pool: EnginePool, dev: Path, powell: str
) -> None:
    dlib = Runtime(settings.model_copy(update={"engine": DlibEngineSettings()}), engine=dlib_pool)
    dlib.open()
    try:
        assert reindex_service.reindex(dlib).added == 2
        faces = _faces(client, powell)["items"]
        assert sorted(f["engine"] for f in faces) == ["dlib", "dlib", "opencv", "opencv"]
        first_photo = min((f for f in faces if f["engine"] == "opencv"), key=lambda f: f["id"])["image_id"]
        dlib_face = next(f["id"] for f in faces if f["engine"] == "dlib" and f["image_id"] == first_photo)
        assert len(dlib.index) == 2

        # Deleted through the dlib embedding's id: the photo goes with the opencv embedding too.
        assert client.delete(f"/api/v1/people/{powell}/faces/{dlib_face}").status_code == 204

        left = _faces(client, powell)["items"]
        assert len(left) == 2 and all(f["image_id"] != first_photo for f in left)
        assert client.get(f"/api/v1/people/{powell}").json()["face_count"] == 1
        assert len(runtime.index) == 1
        dlib.sync_index()
        assert len(dlib.index) == 1
        assert dlib_face not in {f.face_id for f in dlib.store.iter_embeddings("dlib", dlib.engine.info.model_version)}
        assert pending_blob_count(runtime) == 0
    finally:
        dlib.close()
