"""The server the app connects to, remembered between runs with QSettings.

The key is kept only when the user ticks "Remember key", in the same per-user settings file (on Linux
~/.config/facegate/desktop.ini), which is made readable by its owner only (0600). It is not encrypted: anyone
who can read that file, or runs code as that user, has the key. Leave the box unticked on a shared computer
(the key is then asked for each run) and prefer a key with only the scopes this app needs."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from PySide6.QtCore import QSettings

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class SavedConnection:
    url: str
    key: str  # "" when not remembered
    remember_key: bool
    camera: str  # camera index ("0"), device path or stream URL


def app_settings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "facegate", "desktop")


def load(settings: QSettings) -> SavedConnection:
    remember = str(settings.value("remember_key", "false")).lower() == "true"
    return SavedConnection(
        url=str(settings.value("url", DEFAULT_URL)),
        key=str(settings.value("key", "")) if remember else "",
        remember_key=remember,
        camera=str(settings.value("camera", "0")),
    )


def save(settings: QSettings, saved: SavedConnection) -> None:
    settings.setValue("url", saved.url)
    settings.setValue("remember_key", "true" if saved.remember_key else "false")
    settings.setValue("camera", saved.camera)
    if saved.remember_key:
        settings.setValue("key", saved.key)
    else:
        settings.remove("key")
    settings.sync()
    if os.name == "posix":
        # The key is in clear in this file: only its owner may read it (not possible on every file system).
        with contextlib.suppress(OSError):
            os.chmod(settings.fileName(), 0o600)
