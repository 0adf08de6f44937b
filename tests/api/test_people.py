"""/api/v1/people: list, get, update, and delete that purges everything stored about the person."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from facegate.services.runtime import Runtime
from facegate.store.models import FaceRecord, ImageRecord, MatchRecord, Person
from tests.api.conftest import ClientFactory
from tests.support import blob_files, enroll, identify, row_counts, sql

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def people(client: TestClient, dev: Path) -> dict[str, str]:
    """name -> id, enrolled in this order."""
    folders = {"Colin Powell": "colin_powell", "George W. Bush": "george_w_bush", "Ariel": "ariel_sharon"}
    return {name: enroll(client, [dev / f / "1.jpg"], name=name)["person"]["id"] for name, f in folders.items()}


def test_list_people_in_enrollment_order_with_total(client: TestClient, people: dict[str, str]) -> None:
    body = client.get("/api/v1/people").json()
    assert body["total"] == 3
    assert [p["id"] for p in body["items"]] == list(people.values())
    assert all(p["face_count"] == 1 for p in body["items"])


def test_list_people_pages(client: TestClient, people: dict[str, str]) -> None:
    page = client.get("/api/v1/people", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 3
    assert [p["id"] for p in page["items"]] == list(people.values())[1:3]
    assert client.get("/api/v1/people", params={"offset": 10}).json() == {"items": [], "total": 3}


def test_list_people_filters_by_name_substring_ignoring_case(client: TestClient, people: dict[str, str]) -> None:
    body = client.get("/api/v1/people", params={"name": "bUsH"}).json()
    assert body["total"] == 1
    assert body["items"][0]["id"] == people["George W. Bush"]


def test_get_person(client: TestClient, people: dict[str, str]) -> None:
    body = client.get(f"/api/v1/people/{people['Ariel']}").json()
    assert set(body) == {"id", "name", "external_id", "metadata", "face_count", "created_at", "updated_at"}
    assert body["name"] == "Ariel"


@pytest.mark.parametrize(
    ("method", "json"), [("GET", None), ("PATCH", {"name": "Nobody"}), ("DELETE", None)], ids=["get", "patch", "delete"]
)
def test_unknown_person_is_404(client: TestClient, method: str, json: dict[str, str] | None) -> None:
    response = client.request(method, f"/api/v1/people/{UNKNOWN_ID}", json=json)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "person_not_found"


def test_patch_updates_only_the_fields_given(client: TestClient, people: dict[str, str]) -> None:
    person_id = people["Ariel"]
    before = client.get(f"/api/v1/people/{person_id}").json()
    time.sleep(0.01)

    renamed = client.patch(f"/api/v1/people/{person_id}", json={"name": "Ariel Sharon"}).json()
    assert renamed["name"] == "Ariel Sharon"
    assert renamed["metadata"] == before["metadata"]
    assert renamed["updated_at"] > before["updated_at"]

    tagged = client.patch(f"/api/v1/people/{person_id}", json={"metadata": {"role": "pm"}, "external_id": "p-1"}).json()
    assert (tagged["name"], tagged["metadata"], tagged["external_id"]) == ("Ariel Sharon", {"role": "pm"}, "p-1")

    cleared = client.patch(f"/api/v1/people/{person_id}", json={"external_id": None}).json()
    assert cleared["external_id"] is None
    assert client.get(f"/api/v1/people/{person_id}").json() == cleared


def test_patch_to_an_external_id_in_use_is_a_conflict(client: TestClient, people: dict[str, str]) -> None:
    client.patch(f"/api/v1/people/{people['Ariel']}", json={"external_id": "p-1"})
    response = client.patch(f"/api/v1/people/{people['Colin Powell']}", json={"external_id": "p-1"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "external_id_taken"
    assert client.get(f"/api/v1/people/{people['Colin Powell']}").json()["external_id"] is None


@pytest.mark.parametrize("body", [{"name": ""}, {"face_count": 3}, {"metadata": "text"}])
def test_patch_with_an_invalid_body_is_invalid_field(
    client: TestClient, people: dict[str, str], body: dict[str, object]
) -> None:
    response = client.patch(f"/api/v1/people/{people['Ariel']}", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_field"


def test_delete_purges_rows_blobs_index_entries_and_match_history(
    client: TestClient, runtime: Runtime, dev: Path, people: dict[str, str]
) -> None:
    gone = people["Colin Powell"]
    enroll(client, [dev / "colin_powell" / "2.jpg"], person_id=gone)
    seen = identify(client, dev / "colin_powell" / "3.jpg")["faces"][0]
    assert seen["match"]["person_id"] == gone
    kept_match = identify(client, dev / "george_w_bush" / "2.jpg")["faces"][0]
    assert kept_match["match"]["person_id"] == people["George W. Bush"]
    with sql(runtime).db.session() as session:
        gone_faces = list(session.scalars(select(FaceRecord.id).where(FaceRecord.person_id == gone)))
        gone_images = list(session.scalars(select(ImageRecord.blob_key).where(ImageRecord.person_id == gone)))
        gone_crops = list(session.scalars(select(MatchRecord.crop_key).where(MatchRecord.person_id == gone)))
        vector = np.frombuffer(session.get_one(FaceRecord, gone_faces[0]).embedding, dtype=np.float32)
    assert len(gone_faces) == 2 and len(gone_images) == 2 and len(gone_crops) == 1
    files_before = blob_files(runtime)
    index_before = len(runtime.index)

    response = client.delete(f"/api/v1/people/{gone}")

    assert response.status_code == 204
    assert response.content == b""
    with sql(runtime).db.session() as session:
        assert session.get(Person, gone) is None
        for model in (ImageRecord, FaceRecord, MatchRecord):
            assert session.scalars(select(model).where(model.person_id == gone)).all() == []
    assert row_counts(runtime) == {"people": 2, "images": 2, "faces": 2, "matches": 1}
    root = runtime.settings.blob_path
    for key in (*gone_images, *gone_crops):
        assert not (root / key).exists(), key
    assert set(blob_files(runtime)) == set(files_before) - {root / k for k in (*gone_images, *gone_crops)}
    assert len(runtime.index) == index_before - 2
    assert all(hit.person_id != gone for hit in runtime.index.search(vector, 10))
    assert client.get(f"/api/v1/people/{gone}").status_code == 404
    assert client.delete(f"/api/v1/people/{gone}").status_code == 404
    history = client.get("/api/v1/matches").json()
    assert [m["id"] for m in history["items"]] == [kept_match["match_id"]]

    again = identify(client, dev / "colin_powell" / "3.jpg")["faces"][0]
    assert again["match"] is None or again["match"]["person_id"] != gone
    assert all(c["person_id"] != gone for c in again["candidates"])


def test_delete_then_enroll_the_same_photo_again(client: TestClient, runtime: Runtime, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    first = enroll(client, [photo], name="Colin Powell")["person"]["id"]
    assert client.delete(f"/api/v1/people/{first}").status_code == 204
    second = enroll(client, [photo], name="Colin Powell")
    assert second["person"]["id"] != first
    assert len(runtime.index) == 1
    assert identify(client, dev / "colin_powell" / "2.jpg")["faces"][0]["match"]["person_id"] == second["person"]["id"]


def test_patch_cannot_null_the_name(client: TestClient, dev: Path) -> None:
    person = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")["person"]
    response = client.patch(f"/api/v1/people/{person['id']}", json={"name": None})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_name")
    assert client.get(f"/api/v1/people/{person['id']}").json()["name"] == "Colin Powell"


def test_sightings_of_a_person_enrolled_after_being_seen(client: TestClient, dev: Path) -> None:
    unknown = identify(client, dev / "colin_powell" / "2.jpg")["faces"][0]
    assert unknown["match"] is None and unknown["reason"] == "no_candidate"
    person = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")["person"]["id"]

    response = client.get(f"/api/v1/people/{person}/sightings", params={"limit": 10})

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["match"]["id"] for item in body["items"]] == [unknown["match_id"]]
    assert body["items"][0]["distance"] <= body["threshold"] and body["searched"] == 1
    missing = client.get("/api/v1/people/no-such-person/sightings")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "person_not_found"


def test_merge_two_enrollments_of_one_person(client: TestClient, dev: Path) -> None:
    first = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")["person"]["id"]
    second = enroll(client, [dev / "colin_powell" / "2.jpg"], name="Powell, C.")["person"]["id"]

    response = client.post(f"/api/v1/people/{first}/merge", json={"from_person_id": second})

    assert response.status_code == 200, response.text
    assert response.json()["id"] == first and response.json()["face_count"] == 2
    assert client.get(f"/api/v1/people/{second}").status_code == 404
    same = client.post(f"/api/v1/people/{first}/merge", json={"from_person_id": first})
    assert same.status_code == 400 and same.json()["error"]["code"] == "same_person"
    gone = client.post(f"/api/v1/people/{first}/merge", json={"from_person_id": second})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "person_not_found"
    audit = client.get("/api/v1/audit").json()["items"]
    assert any(entry["action"] == "person_merged" for entry in audit)


def test_split_faces_out_to_a_new_person(client: TestClient, dev: Path) -> None:
    powell = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")["person"]["id"]
    bush = enroll(client, [dev / "george_w_bush" / "1.jpg", dev / "george_w_bush" / "2.jpg"], name="Bush")
    assert client.post(f"/api/v1/people/{powell}/merge", json={"from_person_id": bush["person"]["id"]}).is_success
    moving = [f["id"] for f in bush["faces"]]

    response = client.post(f"/api/v1/people/{powell}/split", json={"face_ids": moving, "name": "George W. Bush"})

    assert response.status_code == 200, response.text
    split = response.json()
    assert split["name"] == "George W. Bush" and split["face_count"] == 2
    faces = client.get(f"/api/v1/people/{split['id']}/faces").json()["items"]
    assert sorted(f["id"] for f in faces) == sorted(moving) and not any(f["auto"] for f in faces)
    named = identify(client, dev / "george_w_bush" / "3.jpg")["faces"][0]["match"]
    assert named["person_id"] == split["id"]
    bad = client.post(f"/api/v1/people/{powell}/split", json={"face_ids": moving, "name": "Again"})
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "face_not_found"
    both = client.post(f"/api/v1/people/{powell}/split", json={"face_ids": [1], "name": "A", "person_id": powell})
    assert both.status_code == 400 and both.json()["error"]["code"] == "name_or_person_id"
    audit = client.get("/api/v1/audit").json()["items"]
    assert any(e["action"] == "person_split" and e["detail"]["to"] == split["id"] for e in audit)


def test_auto_enrolled_faces_are_listed_with_the_flag_and_removable(make_client: ClientFactory, dev: Path) -> None:
    client, _ = make_client(auto_enroll={"enabled": True})
    person = enroll(client, [dev / "deepface_person_02" / "1.jpg"], name="Person 2")["person"]["id"]
    assert identify(client, dev / "deepface_person_02" / "3.jpg")["faces"][0]["match"]["person_id"] == person

    faces = client.get(f"/api/v1/people/{person}/faces").json()["items"]

    assert [f["auto"] for f in faces] == [False, True]
    auto = faces[1]["id"]
    assert client.delete(f"/api/v1/people/{person}/faces/{auto}").status_code == 204
    assert [f["auto"] for f in client.get(f"/api/v1/people/{person}/faces").json()["items"]] == [False]
