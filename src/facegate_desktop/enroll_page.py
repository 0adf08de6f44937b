"""Enroll: a name and photos (files or camera snapshots); after enrolling, each photo shows the face that was
taken from it, or why it was refused."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QIcon, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from facegate_desktop.camera import CameraDialog
from facegate_desktop.client import ApiError, Enrollment, FacegateClient, Photo
from facegate_desktop.identify_page import IMAGE_FILTER
from facegate_desktop.messages import rejection
from facegate_desktop.photo import KNOWN, UNKNOWN, Label, annotate, decode
from facegate_desktop.session import Session

THUMB = QSize(160, 160)


def unique_name(name: str, taken: set[str]) -> str:
    """The server reports each photo by its file name: two photos named 1.jpg (from two folders) get apart."""
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    n = 2
    while f"{stem}-{n}{dot}{suffix}" in taken:
        n += 1
    return f"{stem}-{n}{dot}{suffix}"


class EnrollPage(QWidget):
    def __init__(self, session: Session, camera_source: str = "0", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.camera_source = camera_source
        self.photos: list[Photo] = []
        self.result: Enrollment | None = None

        self.name = QLineEdit()
        self.name.setPlaceholderText("Full name, e.g. Colin Powell")
        self.name.setMaxLength(200)
        self.name.textChanged.connect(lambda _: self._update_buttons())
        self.name.returnPressed.connect(self.enroll)
        form = QFormLayout()
        form.addRow("Name", self.name)

        self.add_button = QPushButton("Add photos…")
        self.add_button.clicked.connect(self._choose)
        self.camera_button = QPushButton("Camera…")
        self.camera_button.clicked.connect(self.snap)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        self.enroll_button = QPushButton("Enroll")
        self.enroll_button.setDefault(True)
        self.enroll_button.clicked.connect(self.enroll)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.camera_button, self.clear_button):
            buttons.addWidget(button)
        buttons.addStretch()
        buttons.addWidget(self.enroll_button)

        self.list = QListWidget()
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(THUMB)
        self.list.setGridSize(QSize(THUMB.width() + 40, THUMB.height() + 60))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setWordWrap(True)
        self.list.setMovement(QListView.Movement.Static)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.list, 1)
        self._update_buttons()

    def _choose(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Photos of the person", "", IMAGE_FILTER)
        self.add_files([Path(p) for p in paths])

    def add_files(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                self.add_photo(Photo(path.name, path.read_bytes()))
            except OSError as exc:
                self.session.error(ApiError("unreadable_file", f"Cannot read {path}: {exc.strerror or exc}"))

    def add_photo(self, photo: Photo) -> None:
        if self.result is not None:  # a new enrollment starts from the photos added after the last one
            self.clear()
        photo = Photo(unique_name(photo.filename, {p.filename for p in self.photos}), photo.data)
        self.photos.append(photo)
        item = QListWidgetItem(QIcon(QPixmap.fromImage(decode(photo.data))), photo.filename)
        item.setToolTip(photo.filename)
        self.list.addItem(item)
        self._update_buttons()

    def snap(self) -> None:
        photo = CameraDialog.take(self.camera_source, self)
        if photo is not None:
            self.add_photo(photo)

    def clear(self) -> None:
        self.photos = []
        self.result = None
        self.list.clear()
        self._update_buttons()

    def _update_buttons(self, busy: bool = False) -> None:
        ready = bool(self.name.text().strip()) and bool(self.photos) and self.result is None
        self.enroll_button.setEnabled(ready and not busy)
        for widget in (self.add_button, self.camera_button, self.clear_button, self.name):
            widget.setEnabled(not busy)

    def enroll(self) -> None:
        name, photos = self.name.text().strip(), list(self.photos)
        if not name or not photos or self.result is not None:
            return
        self._update_buttons(busy=True)

        def work(client: FacegateClient) -> Enrollment:
            return client.enroll(name, photos)

        count = f"{len(photos)} photo{'s' if len(photos) > 1 else ''}"
        self.session.run(f"Enrolling {name} from {count}…", work, self._show, lambda _: self._update_buttons())

    def _show(self, result: object) -> None:
        assert isinstance(result, Enrollment)
        self.result = result
        self._update_buttons()
        faces = {f.filename: f for f in result.faces}
        refused = {r.filename: r for r in result.rejected}
        for row, photo in enumerate(self.photos):
            item = self.list.item(row)
            if photo.filename in faces:
                face = faces[photo.filename]
                # The box alone (the name is the person's), drawn on the thumbnail so it keeps a visible width.
                full = decode(photo.data)
                thumb = full.scaled(
                    THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
                image = annotate(thumb, [Label(face.box, "", True)], full.size())
                item.setIcon(QIcon(QPixmap.fromImage(image)))
                item.setText(f"✓ {photo.filename}")
                item.setForeground(QBrush(KNOWN))
                item.setToolTip(f"Face taken (quality {face.quality:.2f})")
            elif photo.filename in refused:
                why = rejection(refused[photo.filename].reason, refused[photo.filename].message)
                item.setText(f"✗ {photo.filename}: {why}")
                item.setForeground(QBrush(UNKNOWN))
                item.setToolTip(why)
        skipped = f", {len(result.rejected)} refused" if result.rejected else ""
        self.session.info(f"Enrolled {result.person.name}: {len(result.faces)} face(s) taken{skipped}.")
        self.session.people_changed.emit()
        self.name.clear()
