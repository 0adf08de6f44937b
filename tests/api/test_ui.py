"""The web client's serving: /ui from the package with a strict policy (no inline script or style, the camera
allowed for this origin only), / redirecting there, and nothing of it when the UI is disabled."""

from __future__ import annotations

from fastapi.testclient import TestClient

from facegate.api.ui import WEB_ROOT
from facegate.config import UiSettings
from tests.api.conftest import ClientFactory


def test_root_redirects_to_the_ui(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui/"
    assert client.get("/ui", follow_redirects=False).headers["location"].endswith("/ui/")


def test_ui_is_served_without_a_key_under_a_strict_policy(client: TestClient) -> None:
    page = client.get("/ui/", headers={"X-API-Key": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe" not in policy
    assert page.headers["Permissions-Policy"].startswith("camera=(self)")
    assert page.headers["Cache-Control"] == "no-cache"  # revalidated: no mix of old and new modules
    script = client.get("/ui/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # Elsewhere the camera stays off.
    assert client.get("/docs").headers["Permissions-Policy"].startswith("camera=()")


def test_every_module_the_page_imports_is_served(client: TestClient) -> None:
    for path in WEB_ROOT.rglob("*.js"):
        response = client.get(f"/ui/{path.relative_to(WEB_ROOT).as_posix()}")
        assert response.status_code == 200, path
    # The files hold no inline handlers or styles the policy would block.
    for path in [*WEB_ROOT.rglob("*.js"), *WEB_ROOT.rglob("*.html")]:
        text = path.read_text()
        assert "innerHTML" not in text and "style=" not in text and "eval(" not in text, path


def test_disabled_ui_is_not_served(make_client: ClientFactory) -> None:
    client, _ = make_client(ui=UiSettings(enabled=False))
    assert client.get("/", follow_redirects=False).headers["location"] == "/docs"
    assert client.get("/ui/").status_code == 404
