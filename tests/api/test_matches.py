"""/api/v1/matches: the history identify writes, filtered by person, time and unknown-only, with crops."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facegate.config import IdentifySettings
from tests.api.conftest import ClientFactory
from tests.support import enroll, identify, image_field


@dataclass
class History:
    powell: str  # person id
    known: list[int]  # match ids, oldest first
    unknown: int


@pytest.fixture
def history(client: TestClient, dev: Path) -> History:
    """Colin Powell enrolled and seen twice, then one stranger seen once."""
    powell = enroll(client, [dev / "colin_powell" / "1.jpg"], name="Colin Powell")["person"]["id"]
    known = [identify(client, dev / "colin_powell" / n)["faces"][0] for n in ("2.jpg", "3.jpg")]
    stranger = identify(client, dev / "ariel_sharon" / "1.jpg")["faces"][0]
    assert all(f["match"] and f["match"]["person_id"] == powell for f in known)
    assert stranger["match"] is None
    return History(powell, [f["match_id"] for f in known], stranger["match_id"])


def test_list_is_newest_first_with_total(client: TestClient, history: History) -> None:
    body = client.get("/api/v1/matches").json()
    assert body["total"] == 3
    assert [m["id"] for m in body["items"]] == [history.unknown, *reversed(history.known)]
    newest = body["items"][0]
    assert newest["person_id"] is None and newest["name"] is None and newest["distance"] is None
    assert newest["candidates"][0]["person_id"] == history.powell
    assert newest["has_crop"] is True
    assert newest["source"] == "api"


def test_filter_by_person(client: TestClient, history: History) -> None:
    body = client.get("/api/v1/matches", params={"person_id": history.powell}).json()
    assert body["total"] == 2
    assert sorted(m["id"] for m in body["items"]) == sorted(history.known)
    assert all(m["name"] == "Colin Powell" and m["distance"] <= m["threshold"] for m in body["items"])


def test_filter_unknown_only(client: TestClient, history: History) -> None:
    body = client.get("/api/v1/matches", params={"unknown": "true"}).json()
    assert [m["id"] for m in body["items"]] == [history.unknown]
    assert body["total"] == 1


def test_filter_by_time_range(client: TestClient, history: History) -> None:
    items = client.get("/api/v1/matches").json()["items"]
    oldest = datetime.fromisoformat(items[-1]["created_at"])
    newest = datetime.fromisoformat(items[0]["created_at"])
    assert oldest.tzinfo is not None
    second = timedelta(seconds=1)

    def ids(**params: str) -> list[int]:
        return [m["id"] for m in client.get("/api/v1/matches", params=params).json()["items"]]

    assert len(ids(since=(oldest - second).isoformat())) == 3
    assert ids(since=(newest + second).isoformat()) == []
    assert ids(until=oldest.isoformat()) == []  # `until` is exclusive
    assert len(ids(since=oldest.isoformat(), until=(newest + second).isoformat())) == 3
    assert ids(since=newest.isoformat()) == [items[0]["id"]]
    # The same instants written with another UTC offset select the same rows.
    plus_two = timezone(timedelta(hours=2))
    assert ids(since=newest.astimezone(plus_two).isoformat()) == [items[0]["id"]]
    assert ids(until=oldest.astimezone(plus_two).isoformat()) == []


@pytest.mark.parametrize("value", ["0.5", "1700000000", "-3", "1e9"])
@pytest.mark.parametrize("path", ["/api/v1/matches", "/api/v1/audit"])
def test_a_number_is_not_a_time(client: TestClient, path: str, value: str) -> None:
    # Pydantic read numbers as Unix seconds, which the document's `format: date-time` does not say (schemathesis).
    response = client.get(path, params={"until": value})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "until"


def test_filters_combine_with_paging(client: TestClient, history: History) -> None:
    body = client.get("/api/v1/matches", params={"person_id": history.powell, "limit": 1, "offset": 1}).json()
    assert body["total"] == 2
    assert [m["id"] for m in body["items"]] == [history.known[0]]


def test_get_one_match(client: TestClient, history: History) -> None:
    match_id = history.unknown
    body = client.get(f"/api/v1/matches/{match_id}").json()
    assert body["id"] == match_id
    assert set(body["box"]) == {"left", "top", "width", "height"}


def test_crop_is_a_jpeg_of_the_face(client: TestClient, history: History) -> None:
    match_id = history.known[0]
    box = client.get(f"/api/v1/matches/{match_id}").json()["box"]

    response = client.get(f"/api/v1/matches/{match_id}/crop")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(response.content)) as crop:
        assert crop.format == "JPEG"
        width, height = crop.size
    # The box plus a margin, cut at the image border.
    assert box["width"] <= width <= box["width"] * 1.5 and box["height"] <= height <= box["height"] * 1.5


@pytest.mark.parametrize("path", ["/api/v1/matches/999999", "/api/v1/matches/999999/crop"])
def test_unknown_match_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "match_not_found"


def test_match_without_a_kept_crop(make_client: ClientFactory, dev: Path) -> None:
    client, _ = make_client(identify=IdentifySettings(keep_crops=False))
    [face] = client.post("/api/v1/identify", files=[image_field(dev / "colin_powell" / "1.jpg")]).json()["faces"]

    assert client.get(f"/api/v1/matches/{face['match_id']}").json()["has_crop"] is False
    response = client.get(f"/api/v1/matches/{face['match_id']}/crop")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "crop_not_found"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"since": "yesterday"}])
def test_invalid_filter_is_invalid_field(client: TestClient, params: dict[str, object]) -> None:
    response = client.get("/api/v1/matches", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_field"


def test_enroll_an_unknown_from_its_match(client: TestClient, history: History, dev: Path) -> None:
    response = client.post(f"/api/v1/matches/{history.unknown}/enroll", data={"name": "Ariel Sharon"})
    assert response.status_code == 201, response.text
    sharon = response.json()["person"]
    assert sharon["face_count"] == 1
    # The match is now labelled with the new person, and their other photos are recognised.
    assert client.get(f"/api/v1/matches/{history.unknown}").json()["person_id"] == sharon["id"]
    again = identify(client, dev / "ariel_sharon" / "2.jpg")["faces"][0]
    assert again["match"] and again["match"]["person_id"] == sharon["id"]


def test_enroll_from_match_onto_an_existing_person(client: TestClient, history: History) -> None:
    response = client.post(f"/api/v1/matches/{history.known[0]}/enroll", data={"person_id": history.powell})
    assert response.status_code == 201, response.text
    assert response.json()["person"]["face_count"] == 2


def test_enroll_from_match_errors(client: TestClient, history: History) -> None:
    missing = client.post("/api/v1/matches/999999/enroll", data={"name": "x"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "match_not_found")
    neither = client.post(f"/api/v1/matches/{history.unknown}/enroll")
    assert (neither.status_code, neither.json()["error"]["code"]) == (400, "name_or_person_id")
    people_before = client.get("/api/v1/people").json()["total"]
    nobody = client.post(f"/api/v1/matches/{history.unknown}/enroll", data={"person_id": "no-such-person"})
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (404, "person_not_found")
    assert client.get("/api/v1/people").json()["total"] == people_before


def test_reject_a_match_over_http(client: TestClient, dev: Path) -> None:
    """deepface_person_10 is falsely named as deepface_person_11 at the default threshold; once rejected, a
    later photo of person 10 is not, and the rejection is audited."""
    p11 = enroll(client, [dev / "deepface_person_11" / "2.jpg"], name="Person 11")["person"]["id"]
    first = identify(client, dev / "deepface_person_10" / "5.jpg")["faces"][0]
    assert first["match"]["person_id"] == p11

    response = client.post(f"/api/v1/matches/{first['match_id']}/reject")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rejected"] is True and body["person_id"] is None and body["id"] == first["match_id"]
    later = identify(client, dev / "deepface_person_10" / "2.jpg")["faces"][0]
    assert later["match"] is None and later["reason"] == "rejected_lookalike"
    assert any(c["person_id"] == p11 and c["rejected_lookalike"] for c in later["candidates"])
    again = client.post(f"/api/v1/matches/{first['match_id']}/reject")  # names nobody now
    assert again.status_code == 409 and again.json()["error"]["code"] == "match_not_named"
    missing = client.post("/api/v1/matches/999999/reject")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "match_not_found"
    audit = client.get("/api/v1/audit").json()["items"]
    assert any(e["action"] == "match_rejected" and e["target"] == p11 for e in audit)
