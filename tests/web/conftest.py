"""Browser tests of the web client: Debian's Chromium driven by Playwright (no browser download) against a
real `facegate serve` child process, signed in with real keys, on real photos of the dev set.

Screenshots of every test are kept as artifacts: under FACEGATE_WEB_SCREENSHOTS when set, else
<pytest basetemp>/web-screenshots (printed at the end of the session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import ADMIN_KEY, Server, files_deployment, module_processes

CHROMIUM = os.environ.get("FACEGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A synthetic camera (a moving test pattern) that needs no permission prompt: the webcam snapshot path.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
# The enroll and identify of a multi-megapixel photo on a shared 2-core machine can take seconds.
SLOW_MS = 90_000
# Above the dev set's largest photos (2-5 MP); the "too large" test makes a bigger image.
MAX_IMAGE_PIXELS = 12_000_000
# Assertions wait as long as a loaded 2-core machine may need for a page's API calls (5 s by default).
expect.set_options(timeout=30_000)


_SHOTS = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshot_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("FACEGATE_WEB_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "web-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    request.config.stash[_SHOTS] = path
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's `chromium` (.ci/run does).")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server per test module (SQLite + files), its admin key known; a module's SERVER_SETTINGS
    (FACEGATE_* variables) are added to its environment."""
    root = tmp_path_factory.mktemp("web-server")
    processes = module_processes(request, root / "logs")
    settings = {
        "FACEGATE_LIMITS__MAX_IMAGE_PIXELS": str(MAX_IMAGE_PIXELS),
        **getattr(request.module, "SERVER_SETTINGS", {}),
    }
    deployment = files_deployment(root / "data", **settings)
    try:
        yield processes.start_server("web-server", deployment.env)
    finally:
        processes.close()


def create_key(server: Server, name: str, scopes: list[str]) -> str:
    with server.client() as client:
        response = client.post("/api/v1/keys", json={"name": name, "scopes": scopes})
        assert response.status_code == 201, response.text
        secret: str = response.json()["secret"]
        return secret


@dataclass
class Tab:
    """One browser tab on the server, with the page's uncaught errors collected."""

    page: Page
    url: str
    shots: Path
    errors: list[str]

    def open(self, hash_path: str = "") -> None:
        self.page.goto(f"{self.url}/ui/{hash_path}")

    def sign_in(self, key: str = ADMIN_KEY) -> None:
        page = self.page
        self.open()
        page.fill("#key", key)
        page.get_by_role("button", name="Sign in").click()
        # Signed in (the key's name shows) or refused (the form's alert): only then may the test navigate.
        page.wait_for_selector("#who:not([hidden]), .signin [role=alert]:not([hidden])")
        if page.locator("#who").is_visible():  # then on to the first page the key may see
            page.wait_for_url(lambda url: not url.endswith(("#/signin", "#/")))

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser: Browser, server: Server, screenshot_dir: Path) -> Iterator[Tab]:
    """A fresh browser context per test (its own sessionStorage: signed out)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(SLOW_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield Tab(page, server.url, screenshot_dir, errors)
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    folder = config.stash.get(_SHOTS, None)
    if folder is not None:
        terminalreporter.write_line(f"web UI screenshots: {folder}")
