"""Desktop app tests: Qt offscreen (no display needed), against a real `facegate serve` child process on the
embedded default, with real photos of the dev set.

Screenshots are kept as artifacts: under FACEGATE_DESKTOP_SCREENSHOTS when set, else
<pytest basetemp>/desktop-screenshots."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Before Qt loads: no display here, and none needed.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from facegate_desktop.client import FacegateClient
from facegate_desktop.window import MainWindow
from tests.e2e.conftest import ADMIN_KEY, Server, files_deployment, module_processes

# Smaller than nothing in the dev set: the "too large" test makes a bigger image.
MAX_IMAGE_PIXELS = 12_000_000
# An enroll or identify of multi-megapixel photos on a shared 2-core machine can take a while.
SLOW_S = 90.0


@pytest.fixture(scope="session")
def qapp() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication([])
    assert isinstance(app, QApplication)
    return app


_SHOTS = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshot_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("FACEGATE_DESKTOP_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "desktop-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    request.config.stash[_SHOTS] = path
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    folder = config.stash.get(_SHOTS, None)
    if folder is not None:
        terminalreporter.write_line(f"desktop app screenshots: {folder}")


@pytest.fixture(scope="session")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the desktop tests (SQLite + files); each test enrolls people of its own names."""
    root = tmp_path_factory.mktemp("desktop-server")
    processes = module_processes(request, root / "logs")
    deployment = files_deployment(root / "data", FACEGATE_LIMITS__MAX_IMAGE_PIXELS=str(MAX_IMAGE_PIXELS))
    try:
        yield processes.start_server("desktop-server", deployment.env)
    finally:
        processes.close()


@pytest.fixture
def api(server: Server) -> Iterator[FacegateClient]:
    """The app's own client with the admin key: to set up and check what the GUI did."""
    client = FacegateClient(server.url, ADMIN_KEY)
    yield client
    client.close()


def wait_until(condition: Callable[[], object], timeout: float = SLOW_S, what: str = "condition") -> None:
    """Let Qt's event loop run (the GUI stays live) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        QTest.qWait(20)


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "desktop.conf"


@pytest.fixture
def window(qapp: QApplication, settings_file: Path) -> Iterator[MainWindow]:
    win = MainWindow(QSettings(str(settings_file), QSettings.Format.IniFormat))
    win.show()
    yield win
    win.close()
    win.deleteLater()
    QTest.qWait(0)


def connect(win: MainWindow, url: str, key: str = ADMIN_KEY) -> None:
    """Type the address and key and press Connect, as a user does; wait for the answer."""
    win.url.setText(url)
    win.key.setText(key)
    win.connect_button.click()
    wait_until(lambda: win.session.runner.idle(), what="the connection")
