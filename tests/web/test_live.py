"""The live view: a stream (a dev video, looped) shown frame by frame with the people in view boxed and named,
and the event feed read from Server-Sent Events with the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Request, Route, expect

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
    # Pause (disable) and resume (enable) the stream on screen: PATCH /api/v1/streams/{id}.
    picker = page.get_by_role("list", name="Streams")
    page.get_by_role("button", name="Pause this stream").click()
    expect(picker.get_by_role("button", name="stage")).to_contain_text("disabled")
    page.get_by_role("button", name="Resume this stream").click()
    expect(picker.get_by_role("button", name="stage")).not_to_contain_text("disabled", timeout=LIVE_MS)
    expect(page.get_by_role("button", name="Pause this stream")).to_be_visible()
    page.get_by_role("button", name="Remove this stream").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("list", name="Streams")).to_contain_text("No streams yet.")


def test_live_feed_resumes_from_the_last_event_seen(tab: Tab) -> None:
    """The feed's connection ends (a proxy timeout, a server restart): the page connects again with the id of
    the last event it saw as Last-Event-ID, so the server replays what came meanwhile. The first connection is
    answered by the test with one event and closed; the next ones go to the real server."""
    event = {"type": "appeared", "stream": "door", "track": "t1", "person_id": None, "name": "Ada Lovelace",
             "distance": 0.3, "confidence": 0.9, "at": "2026-12-03T10:00:00+00:00"}  # fmt: skip
    answered: list[str] = []
    resumed: list[str | None] = []

    def handle(route: Route, request: Request) -> None:
        if not answered:
            answered.append(request.url)
            body = f": feed\n\nid: 41\nevent: appeared\ndata: {json.dumps(event)}\n\n"
            route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)
            return
        resumed.append(request.headers.get("last-event-id"))
        route.continue_()

    tab.page.route("**/api/v1/events*", handle)
    tab.sign_in()
    tab.open("#/live")
    feed = tab.page.get_by_role("list", name="Events")
    expect(feed.locator("li", has_text="Ada Lovelace appeared on door")).to_be_visible()
    expect(feed.locator("li", has_text="Ada Lovelace")).to_have_count(1)
    for _ in range(80):  # the page waits 3 s before connecting again; handlers run while the test waits here
        if resumed:
            break
        tab.page.wait_for_timeout(250)
    assert resumed and resumed[0] == "41", resumed
