"""Work off the GUI thread: a blocking call (HTTP, camera) runs on Qt's thread pool and its result or error
comes back to the GUI thread through a queued signal, so the window never freezes while the server works."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from facegate_desktop.client import ApiError

log = logging.getLogger(__name__)

Done = Callable[[Any], None]
Failed = Callable[[ApiError], None]


class _Job(QRunnable):
    def __init__(self, runner: TaskRunner, job_id: int, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._runner = runner
        self._job_id = job_id
        self._fn = fn

    def run(self) -> None:
        try:
            result = self._fn()
        except ApiError as exc:
            self._runner.finished.emit(self._job_id, False, exc)
        except Exception as exc:  # a bug or an OS error must reach the user, not kill the worker silently
            log.exception("background task failed")
            self._runner.finished.emit(self._job_id, False, ApiError("unexpected", f"{type(exc).__name__}: {exc}"))
        else:
            self._runner.finished.emit(self._job_id, True, result)


class TaskRunner(QObject):
    """Runs functions on a thread pool; calls `on_done(result)` or `on_error(ApiError)` on the GUI thread.
    `busy_changed(text)` says what is running ("" when nothing is), for the progress indicator."""

    finished = Signal(int, bool, object)  # emitted on a worker thread, delivered queued to this object
    busy_changed = Signal(str)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, Done, Failed]] = {}
        self.finished.connect(self._deliver)

    def run(self, what: str, fn: Callable[[], Any], on_done: Done, on_error: Failed) -> None:
        job_id = next(self._ids)
        self._pending[job_id] = (what, on_done, on_error)
        self.busy_changed.emit(self.busy_text())
        self._pool.start(_Job(self, job_id, fn))

    def busy_text(self) -> str:
        return " · ".join(what for what, _, _ in self._pending.values())

    def idle(self) -> bool:
        return not self._pending

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the pool's threads are done (closing the window; never while it is in use)."""
        return self._pool.waitForDone(msecs)

    @Slot(int, bool, object)
    def _deliver(self, job_id: int, ok: bool, payload: object) -> None:
        _, on_done, on_error = self._pending.pop(job_id)
        self.busy_changed.emit(self.busy_text())
        if ok:
            on_done(payload)
        else:
            assert isinstance(payload, ApiError)
            on_error(payload)
