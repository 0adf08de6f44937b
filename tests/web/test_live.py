"""The live view: a stream (a dev video, looped) shown frame by frame with the people in view boxed and named,
and the event feed read from Server-Sent Events with the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Server, enroll
from tests.web.conftest import Tab

LIVE_MS = 90_000


@pytest.fixture
def stream(server: Server, dev: Path, identities: dict[str, list[Path]]) -> str:
    with server.client() as client:
        if "/api/v1/streams" not in client.get("/openapi.json").json()["paths"]:
            pytest.skip("this server has no streams yet")
        assert enroll(client, "Lin-Manuel Miranda", identities["lin_manuel_miranda"]).status_code == 201
        clip = dev / "video" / "short_hamilton_clip.mp4"
        response = client.post("/api/v1/streams", json={"name": "stage", "source": str(clip), "loop": True})
        assert response.status_code == 201, response.text
        stream_id: str = response.json()["id"]
        return stream_id


def test_live_view_names_people_in_view_and_feeds_events(tab: Tab, stream: str) -> None:
    page = tab.page
    tab.sign_in()
    tab.open("#/live")
    expect(page.get_by_role("button", name="stage")).to_be_visible()
    expect(page.locator(".screen figure img")).to_be_visible(timeout=LIVE_MS)
    # He is on stage for about half the clip: named in view while he is (his box is drawn into the frame).
    in_view = page.get_by_role("list", name="In view now")
    expect(in_view.get_by_role("link", name="Lin-Manuel Miranda")).to_be_visible(timeout=LIVE_MS)
    tab.shot("live")
    feed = page.get_by_role("list", name="Events")
    expect(feed.locator("li", has_text="Lin-Manuel Miranda").first).to_be_visible(timeout=LIVE_MS)
    tab.shot("live-events")
    page.get_by_role("button", name="Remove this stream").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("list", name="Streams")).to_contain_text("No streams yet.")
