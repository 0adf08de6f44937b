"""The desktop app's HTTP client against a real server: answers parsed, every failure an ApiError with the
server's code (or ours when there was no answer)."""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate_desktop.client import ApiError, FacegateClient, Photo
from facegate_desktop.messages import error_text
from tests.desktop.conftest import MAX_IMAGE_PIXELS
from tests.e2e.conftest import Server, free_port


def photo(path: Path) -> Photo:
    return Photo(path.name, path.read_bytes())


def noface(dev: Path) -> Path:
    return sorted((dev / "noface").glob("*.jpg"))[0]


def test_key_info_names_the_key_and_its_scopes(api: FacegateClient) -> None:
    info = api.key_info()
    assert info.scopes == ["admin"]
    assert info.allows("enroll") and info.allows("read")


def test_a_narrow_key_allows_only_its_scopes(server: Server) -> None:
    with server.client() as admin:
        secret = admin.post("/api/v1/keys", json={"name": "door", "scopes": ["identify"]}).json()["secret"]
    client = FacegateClient(server.url, secret)
    try:
        info = client.key_info()
        assert info.name == "door"
        assert info.allows("identify") and not info.allows("enroll") and not info.allows("read")
        with pytest.raises(ApiError) as caught:
            client.people()
        assert (caught.value.status, caught.value.code) == (403, "missing_scope")
    finally:
        client.close()


def test_a_bad_key_is_invalid_api_key(server: Server) -> None:
    client = FacegateClient(server.url, "fg_not-a-key-of-this-server-000000000000")
    try:
        with pytest.raises(ApiError) as caught:
            client.key_info()
    finally:
        client.close()
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
    assert error_text(caught.value) == "This API key is not valid: it is unknown, revoked or expired."


def test_no_server_is_server_unreachable() -> None:
    client = FacegateClient(f"http://127.0.0.1:{free_port()}", "fg_x")
    try:
        with pytest.raises(ApiError) as caught:
            client.key_info()
    finally:
        client.close()
    assert caught.value.code == "server_unreachable" and caught.value.status is None
    assert "could not be reached" in error_text(caught.value)


def test_an_address_that_is_no_url_is_invalid_url() -> None:
    client = FacegateClient("localhost:8000", "fg_x")  # no scheme
    try:
        with pytest.raises(ApiError) as caught:
            client.key_info()
    finally:
        client.close()
    assert caught.value.code == "invalid_url"


def test_a_web_server_that_is_not_facegate_is_a_bad_answer() -> None:
    """A wrong address where some other web server answers 200 with a page, not the API's JSON."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client = FacegateClient(f"http://127.0.0.1:{httpd.server_address[1]}", "fg_x")
    try:
        with pytest.raises(ApiError) as caught:
            client.key_info()
    finally:
        client.close()
        httpd.shutdown()
        httpd.server_close()
    assert caught.value.code == "bad_answer"
    assert error_text(caught.value) == "That address did not answer like a facegate server."


def test_enroll_takes_faces_and_names_refused_photos(
    api: FacegateClient, identities: dict[str, list[Path]], dev: Path
) -> None:
    name = f"Colin Powell {uuid.uuid4().hex[:6]}"
    photos = [photo(p) for p in identities["colin_powell"][:2]] + [photo(noface(dev))]
    result = api.enroll(name, photos)
    try:
        assert result.person.name == name
        assert sorted(f.filename for f in result.faces) == sorted(p.name for p in identities["colin_powell"][:2])
        assert all(f.box.width > 20 and f.box.height > 20 for f in result.faces)
        assert [(r.filename, r.reason) for r in result.rejected] == [(noface(dev).name, "no_face")]
        page = api.people(name=name)
        assert [(p.id, p.face_count) for p in page.items] == [(result.person.id, 2)] and page.total == 1
    finally:
        api.delete_person(result.person.id)
    assert api.people(name=name).total == 0
    with pytest.raises(ApiError) as caught:
        api.delete_person(result.person.id)
    assert (caught.value.status, caught.value.code) == (404, "person_not_found")


def test_enroll_of_no_face_at_all_is_no_face(api: FacegateClient, dev: Path) -> None:
    with pytest.raises(ApiError) as caught:
        api.enroll(f"Nobody {uuid.uuid4().hex[:6]}", [photo(noface(dev))])
    assert (caught.value.status, caught.value.code) == (422, "no_face")
    assert error_text(caught.value) == "No face was found in this photo."


def test_identify_names_enrolled_faces_and_boxes_every_face(
    api: FacegateClient, identities: dict[str, list[Path]], dev: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    people = [
        api.enroll(f"{who} {tag}", [photo(p) for p in identities[who][:2]]).person
        for who in ("barack_obama", "joe_biden")
    ]
    try:
        result = api.identify(photo(dev / "multi" / "obama_and_biden.jpg"))
        names = {f.match.name for f in result.faces if f.match}
        assert names == {f"barack_obama {tag}", f"joe_biden {tag}"}
        assert len(result.faces) == 3  # the girl at the right is unknown
        unknown = [f for f in result.faces if f.match is None]
        assert unknown[0].reason in {"above_threshold", "low_quality"} and unknown[0].candidates
        for face in result.faces:
            assert 0 <= face.box.left < result.width and 0 <= face.box.top < result.height
    finally:
        for person in people:
            api.delete_person(person.id)


def test_a_photo_with_too_many_pixels_is_image_too_large(api: FacegateClient) -> None:
    ok, jpeg = cv2.imencode(".jpg", np.zeros((3000, MAX_IMAGE_PIXELS // 3000 + 100, 3), np.uint8))
    assert ok
    with pytest.raises(ApiError) as caught:
        api.identify(Photo("huge.jpg", jpeg.tobytes()))
    assert caught.value.status == 413
    assert "too many pixels" in error_text(caught.value) or "too large" in error_text(caught.value)


def test_not_an_image_is_refused_with_415(api: FacegateClient) -> None:
    with pytest.raises(ApiError) as caught:
        api.identify(Photo("notes.jpg", b"these are not the pixels you are looking for"))
    assert caught.value.status == 415
