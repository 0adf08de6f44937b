"""Limits a person can run into, on a server configured tightly: rate limited (with the wait), said where
they are looking."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.web.conftest import Tab

# Two identifies per minute per key: the third is refused with 429 and Retry-After.
SERVER_SETTINGS = {"FACEGATE_RATE_LIMIT__SCOPES": '{"identify": "2/minute"}'}


def test_rate_limited_says_how_long_to_wait(tab: Tab, dev: Path) -> None:
    tab.sign_in()
    tab.open("#/identify")
    photo = tab.page.get_by_label("Photo", exact=True)
    for _ in range(2):
        photo.set_input_files(str(dev / "noface" / "banana.jpg"))
        expect(tab.page.locator(".result")).to_contain_text("No face was found in this photo.")
    photo.set_input_files(str(dev / "noface" / "banana.jpg"))
    alert = tab.page.get_by_role("alert")
    expect(alert).to_contain_text("Too many requests.")
    expect(alert).to_contain_text(re.compile(r"Try again in \d+ s\."))
    tab.shot("rate-limited")
