"""The people page's pieces that need no server (the page itself is driven against one in test_window.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from facegate_desktop.people_page import local_time


@pytest.fixture
def tz_tokyo() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ")
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_times_are_shown_in_the_local_zone(tz_tokyo: object) -> None:
    assert local_time("2026-12-03T10:10:59.123456Z") == "2026-12-03 19:10"
    assert local_time("2026-12-03T10:10:00") == "2026-12-03 19:10"  # naive: the server's UTC
    assert local_time("yesterday") == "yesterday"
