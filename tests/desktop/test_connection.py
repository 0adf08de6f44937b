"""The remembered connection: address and camera always, the key only when asked, in a file only its owner
reads."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from facegate_desktop import connection
from facegate_desktop.connection import SavedConnection


def settings(path: Path) -> QSettings:
    return QSettings(str(path), QSettings.Format.IniFormat)


def test_defaults_when_nothing_was_saved(tmp_path: Path) -> None:
    assert connection.load(settings(tmp_path / "none.conf")) == SavedConnection(connection.DEFAULT_URL, "", False, "0")


def test_saved_with_the_key_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "desktop.conf"
    saved = SavedConnection("http://door:8000", "fg_secret", True, "/dev/video2")
    connection.save(settings(path), saved)
    assert connection.load(settings(path)) == saved
    assert path.stat().st_mode & 0o777 == 0o600


def test_unticking_remember_forgets_the_key(tmp_path: Path) -> None:
    path = tmp_path / "desktop.conf"
    connection.save(settings(path), SavedConnection("http://door:8000", "fg_secret", True, "0"))
    connection.save(settings(path), SavedConnection("http://door:8000", "fg_secret", False, "0"))
    assert connection.load(settings(path)) == SavedConnection("http://door:8000", "", False, "0")
    assert "fg_secret" not in path.read_text()
