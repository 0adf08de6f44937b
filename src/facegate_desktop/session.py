"""What every page shares: the connected client and its key's scopes, the task runner, and the message banner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from facegate_desktop.client import ApiError, FacegateClient, KeyInfo
from facegate_desktop.messages import error_text
from facegate_desktop.tasks import TaskRunner


class Session(QObject):
    connected = Signal()  # a new client (or none) and key
    message = Signal(str, str)  # text, kind: "error" | "info" | "" (clear)
    people_changed = Signal()  # someone was enrolled or deleted: lists go stale

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = TaskRunner(self)
        self.client: FacegateClient | None = None
        self.key: KeyInfo | None = None

    def set_connection(self, client: FacegateClient | None, key: KeyInfo | None) -> None:
        if self.client is not None and self.client is not client:
            self.client.close()
        self.client, self.key = client, key
        self.connected.emit()

    def allows(self, scope: str) -> bool:
        return self.key is not None and self.key.allows(scope)

    def run(
        self,
        what: str,
        fn: Callable[[FacegateClient], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[ApiError], None] | None = None,
        *,
        keep_message: bool = False,
    ) -> bool:
        """Run `fn(client)` off the GUI thread; errors go to the banner (and `on_error`, to restore the page).
        The banner's last message is cleared first, unless this is follow-up work (`keep_message`)."""
        client = self.client
        if client is None:
            self.error(ApiError("not_connected", "Connect to a server first."))
            return False
        if not keep_message:
            self.clear()

        def failed(error: ApiError) -> None:
            if error.status == 401 and self.client is client:
                # The key was revoked or expired meanwhile: back to the connection bar, pages disabled.
                self.set_connection(None, None)
            self.error(error)
            if on_error is not None:
                on_error(error)

        self.runner.run(what, lambda: fn(client), on_done, failed)
        return True

    def error(self, error: ApiError) -> None:
        self.message.emit(error_text(error), "error")

    def info(self, text: str) -> None:
        self.message.emit(text, "info")

    def clear(self) -> None:
        self.message.emit("", "")
