"""Work runs on the thread pool; results and errors come back on the GUI thread."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from facegate_desktop.client import ApiError
from facegate_desktop.tasks import TaskRunner
from tests.desktop.conftest import wait_until


def test_results_and_errors_come_back_on_the_gui_thread(qapp: QApplication) -> None:
    runner = TaskRunner()
    gui = QThread.currentThread()
    release = threading.Event()
    seen: dict[str, object] = {}
    busy: list[str] = []
    runner.busy_changed.connect(busy.append)

    def slow() -> str:
        seen["work thread"] = QThread.currentThread()
        release.wait(10)
        return "done"

    def boom() -> str:
        raise OSError("disk on fire")

    def done(result: object) -> None:
        seen["result"], seen["done thread"] = result, QThread.currentThread()

    def failed(error: ApiError) -> None:
        seen["error"], seen["error thread"] = error, QThread.currentThread()

    runner.run("Slow work…", slow, done, failed)
    runner.run("Failing work…", boom, done, failed)
    wait_until(lambda: "error" in seen, 10)
    assert runner.busy_text() == "Slow work…" and not runner.idle()  # the slow one still runs
    release.set()
    wait_until(runner.idle, 10)
    assert seen["result"] == "done"
    assert seen["work thread"] is not gui and seen["done thread"] is gui and seen["error thread"] is gui
    error = seen["error"]
    assert isinstance(error, ApiError) and error.code == "unexpected" and "disk on fire" in error.message
    assert busy[0] == "Slow work…" and busy[-1] == ""


def test_an_api_error_is_passed_as_it_is(qapp: QApplication) -> None:
    runner = TaskRunner()
    errors: list[ApiError] = []

    def refuse() -> None:
        raise ApiError("no_face", "No face", 422)

    runner.run("x", refuse, lambda _: None, errors.append)
    wait_until(runner.idle, 10)
    assert [(e.code, e.status) for e in errors] == [("no_face", 422)]
