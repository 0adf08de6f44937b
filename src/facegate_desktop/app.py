"""`facegate-desktop`: start the desktop app."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from facegate_desktop.connection import app_settings
from facegate_desktop.window import MainWindow


def main() -> int:
    app = QApplication(sys.argv)
    app.setApplicationName("facegate")
    window = MainWindow(app_settings())
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
