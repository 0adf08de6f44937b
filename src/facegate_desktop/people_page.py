"""People: search by name, page through, delete someone (after a confirmation)."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from facegate_desktop.client import FacegateClient, PeoplePage, Person
from facegate_desktop.session import Session

PAGE_SIZE = 50
SEARCH_DELAY_MS = 300


def local_time(iso: str) -> str:
    """The server's UTC timestamp in this computer's time zone, to the minute."""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


class PeopleListPage(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.offset = 0
        self.page: PeoplePage | None = None
        self.query = ""  # the search the shown page answers
        self._latest = 0  # only the latest request's answer is shown (an earlier one may come back last)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name")
        self.search.setClearButtonEnabled(True)
        # Search as the user types, once they pause (one request, not one per key).
        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._debounce.timeout.connect(self.first_page)
        self.search.textChanged.connect(lambda _: self._debounce.start())
        self.search.returnPressed.connect(self.first_page)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self.delete_selected)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.delete_button)

        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Name", "Faces", "Enrolled"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.clicked.connect(lambda: self._go(self.offset - PAGE_SIZE))
        self.next_button = QPushButton("Next ▶")
        self.next_button.clicked.connect(lambda: self._go(self.offset + PAGE_SIZE))
        self.range_label = QLabel("")
        pager = QHBoxLayout()
        pager.addWidget(self.previous_button)
        pager.addStretch()
        pager.addWidget(self.range_label)
        pager.addStretch()
        pager.addWidget(self.next_button)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(pager)
        self._update_buttons()

    def first_page(self) -> None:
        self._go(0)

    def refresh(self, *, keep_message: bool = False) -> None:
        self._go(self.offset, keep_message=keep_message)

    def _go(self, offset: int, *, keep_message: bool = False) -> None:
        if self.session.client is None:
            return
        name, offset = self.search.text(), max(0, offset)
        self.refresh_button.setEnabled(False)
        self._latest += 1
        request = self._latest

        def work(client: FacegateClient) -> PeoplePage:
            return client.people(name=name, limit=PAGE_SIZE, offset=offset)

        self.session.run(
            "Loading people…",
            work,
            lambda page: self._show(page, offset, name) if request == self._latest else None,
            lambda _: self._update_buttons(),
            keep_message=keep_message,
        )

    def _show(self, page: object, offset: int, query: str) -> None:
        assert isinstance(page, PeoplePage)
        if page.total and offset >= page.total:  # the last page emptied (a delete): step back
            self._go(max(0, page.total - PAGE_SIZE), keep_message=True)
            return
        self.page, self.offset, self.query = page, offset, query
        self.table.setRowCount(len(page.items))
        for row, person in enumerate(page.items):
            self.table.setItem(row, 0, QTableWidgetItem(person.name))
            self.table.setItem(row, 1, QTableWidgetItem(str(person.face_count)))
            self.table.setItem(row, 2, QTableWidgetItem(local_time(person.created_at)))
        if page.total:
            self.range_label.setText(f"{offset + 1} to {offset + len(page.items)} of {page.total}")
        else:
            self.range_label.setText("Nobody matches this search." if self.search.text().strip() else "Nobody yet.")
        self._update_buttons()

    def selected(self) -> Person | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.page is None or rows[0].row() >= len(self.page.items):
            return None
        return self.page.items[rows[0].row()]

    def _update_buttons(self) -> None:
        total = self.page.total if self.page else 0
        self.refresh_button.setEnabled(True)
        self.delete_button.setEnabled(self.selected() is not None and self.session.allows("enroll"))
        self.previous_button.setEnabled(self.offset > 0)
        self.next_button.setEnabled(self.offset + PAGE_SIZE < total)

    def confirm_delete(self, person: Person) -> bool:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle("Delete person")
        faces = f"{person.face_count} face{'s' if person.face_count != 1 else ''}"
        box.setText(f"Delete {person.name} and their {faces}?")
        box.setInformativeText("Their photos and match history are deleted too. This cannot be undone.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Yes).setText("Delete")
        return box.exec() == QMessageBox.StandardButton.Yes

    def delete_selected(self) -> None:
        person = self.selected()
        if person is None or not self.confirm_delete(person):
            return
        self.delete_button.setEnabled(False)

        def work(client: FacegateClient) -> None:
            client.delete_person(person.id)

        def done(_: object) -> None:
            self.session.info(f"Deleted {person.name}.")
            self.session.people_changed.emit()

        self.session.run(f"Deleting {person.name}…", work, done, lambda _: self.refresh(keep_message=True))
