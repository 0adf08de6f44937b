"""The main window: the connection bar, the message banner, the Identify / Enroll / People tabs and the
progress indicator of work running in the background."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from facegate_desktop import connection
from facegate_desktop.client import ApiError, FacegateClient, KeyInfo
from facegate_desktop.enroll_page import EnrollPage
from facegate_desktop.identify_page import IdentifyPage
from facegate_desktop.people_page import PeopleListPage
from facegate_desktop.session import Session

BANNER_STYLE = {
    "error": "background:#fee2e2; color:#991b1b; border:1px solid #fca5a5; border-radius:4px; padding:6px;",
    "info": "background:#dcfce7; color:#166534; border:1px solid #86efac; border-radius:4px; padding:6px;",
}


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings) -> None:
        super().__init__()
        self.setWindowTitle("facegate")
        self.settings = settings
        saved = connection.load(settings)
        self.session = Session(self)

        self.url = QLineEdit(saved.url)
        self.url.setPlaceholderText(connection.DEFAULT_URL)
        self.key = QLineEdit(saved.key)
        self.key.setPlaceholderText("API key (fg_…)")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.remember = QCheckBox("Remember key")
        self.remember.setChecked(saved.remember_key)
        self.remember.setToolTip("Kept in clear in your user settings file, readable by you only")
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_to_server)
        self.key.returnPressed.connect(self.connect_to_server)
        self.status = QLabel("Not connected")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Server"))
        bar.addWidget(self.url, 2)
        bar.addWidget(QLabel("Key"))
        bar.addWidget(self.key, 2)
        bar.addWidget(self.remember)
        bar.addWidget(self.connect_button)

        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        self.session.message.connect(self.show_message)

        self.identify_page = IdentifyPage(self.session, saved.camera)
        self.enroll_page = EnrollPage(self.session, saved.camera)
        self.people_page = PeopleListPage(self.session)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.identify_page, "Identify")
        self.tabs.addTab(self.enroll_page, "Enroll")
        self.tabs.addTab(self.people_page, "People")
        self.tabs.currentChanged.connect(self._tab_changed)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: how long the server takes is unknown
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.busy = QLabel()
        self.statusBar().addWidget(self.busy, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.session.runner.busy_changed.connect(self._busy)
        self.session.connected.connect(self._connected)
        self.session.people_changed.connect(lambda: self.people_page.refresh(keep_message=True))
        self._connected()
        self.resize(1100, 720)

    def connect_to_server(self) -> None:
        url, key = self.url.text().strip() or connection.DEFAULT_URL, self.key.text().strip()
        if not key:
            self.show_message("Enter an API key: the server printed one on its first start.", "error")
            return
        self.connect_button.setEnabled(False)
        self.status.setText(f"Connecting to {url}…")
        client = FacegateClient(url, key)

        def done(info: object) -> None:
            assert isinstance(info, KeyInfo)
            self.connect_button.setEnabled(True)
            saved = connection.load(self.settings)
            connection.save(
                self.settings, connection.SavedConnection(url, key, self.remember.isChecked(), saved.camera)
            )
            self.session.set_connection(client, info)
            self.session.clear()

        def failed(error: ApiError) -> None:
            self.connect_button.setEnabled(True)
            client.close()
            self.session.set_connection(None, None)
            self.session.error(error)

        self.session.clear()
        self.session.runner.run(f"Connecting to {url}…", client.key_info, done, failed)

    def _connected(self) -> None:
        key, client = self.session.key, self.session.client
        if key is None or client is None:
            self.status.setText("Not connected: enter the server's address and an API key, then Connect.")
        else:
            self.status.setText(f"Connected to {client.url} with key “{key.name}” ({', '.join(key.scopes)})")
        for page, scope in ((self.identify_page, "identify"), (self.enroll_page, "enroll"), (self.people_page, "read")):
            allowed = self.session.allows(scope)
            page.setEnabled(allowed)
            index = self.tabs.indexOf(page)
            self.tabs.setTabToolTip(index, "" if allowed or key is None else f"Your key has no “{scope}” scope")
        if client is not None and self.session.allows("read"):
            self.people_page.first_page()

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.people_page and self.people_page.isEnabled():
            self.people_page.refresh()

    def show_message(self, text: str, kind: str) -> None:
        self.banner.setText(text)
        self.banner.setStyleSheet(BANNER_STYLE.get(kind, ""))
        self.banner.setProperty("kind", kind)
        self.banner.setVisible(bool(text))

    def _busy(self, text: str) -> None:
        self.busy.setText(text)
        self.progress.setVisible(bool(text))

    def closeEvent(self, event: QCloseEvent) -> None:
        # Let running requests finish (bounded by the client's timeouts) before Qt tears the objects down.
        self.session.runner.wait()
        self.session.set_connection(None, None)
        super().closeEvent(event)
