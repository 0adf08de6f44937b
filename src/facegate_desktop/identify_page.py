"""Identify: a photo from a file or the camera, its faces boxed and named on it, and the list of who is who."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from facegate_desktop.camera import CameraDialog
from facegate_desktop.client import ApiError, FacegateClient, Identification, IdentifiedFace, Photo
from facegate_desktop.messages import unknown_reason
from facegate_desktop.photo import KNOWN, UNKNOWN, Label, PhotoView, annotate, decode
from facegate_desktop.session import Session

IMAGE_FILTER = "Images (*.jpg *.jpeg *.png *.webp *.bmp *.tif *.tiff *.gif);;All files (*)"


def face_label(face: IdentifiedFace) -> str:
    if face.match is not None:
        return f"{face.match.name} {face.match.confidence:.0%}"
    return "unknown"


def face_line(n: int, face: IdentifiedFace) -> str:
    if face.match is not None:
        return f"{n}. {face.match.name}: {face.match.confidence:.0%} sure"
    line = f"{n}. unknown: {unknown_reason(face.reason)}"
    if face.candidates:
        nearest = face.candidates[0]
        line += f" (nearest: {nearest.name}, {nearest.confidence:.0%})"
    return line


class IdentifyPage(QWidget):
    def __init__(self, session: Session, camera_source: str = "0", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.camera_source = camera_source
        self.photo: Photo | None = None
        self.result: Identification | None = None

        self.open_button = QPushButton("Open photo…")
        self.open_button.clicked.connect(self._choose)
        self.camera_button = QPushButton("Camera…")
        self.camera_button.clicked.connect(self.snap)
        self.again_button = QPushButton("Identify again")
        self.again_button.setEnabled(False)
        self.again_button.clicked.connect(self.identify)
        buttons = QHBoxLayout()
        for button in (self.open_button, self.camera_button, self.again_button):
            buttons.addWidget(button)
        buttons.addStretch()

        self.view = PhotoView("Open a photo or use the camera: the faces in it are boxed and named.")
        self.view.clicked.connect(self._clicked)
        self.faces = QListWidget()
        self.faces.setWordWrap(True)
        self.faces.currentRowChanged.connect(self._select)
        # The chosen face's nearest people (click a face on the photo or in the list).
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.PlainText)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # Room for the heading and the nearest three (the API's default top_k) without squeezing the label.
        self.details.setMinimumHeight(5 * self.details.fontMetrics().lineSpacing())
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.faces, 1)
        side_layout.addWidget(self.details)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([760, 320])

        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)

    def _choose(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Photo to identify", "", IMAGE_FILTER)
        if path:
            self.open_file(Path(path))

    def open_file(self, path: Path) -> None:
        try:
            self.set_photo(Photo(path.name, path.read_bytes()))
        except OSError as exc:
            self.session.error(ApiError("unreadable_file", f"Cannot read {path}: {exc.strerror or exc}"))

    def snap(self) -> None:
        photo = CameraDialog.take(self.camera_source, self)
        if photo is not None:
            self.set_photo(photo)

    def set_photo(self, photo: Photo) -> None:
        self.photo = photo
        self.view.set_image(decode(photo.data))
        self.identify()

    def identify(self) -> None:
        photo = self.photo
        if photo is None:
            return
        self.result = None
        self.faces.clear()
        self.faces.addItem("Identifying…")
        self._set_busy(True)

        def work(client: FacegateClient) -> Identification:
            return client.identify(photo)

        self.session.run(f"Identifying {photo.filename}…", work, self._show, self._failed)

    def _set_busy(self, busy: bool) -> None:
        for button in (self.open_button, self.camera_button, self.again_button):
            button.setEnabled(not busy)

    def _failed(self, error: ApiError) -> None:
        self._set_busy(False)
        self.faces.clear()
        self.details.clear()

    def _draw(self, selected: int | None = None) -> None:
        if self.result is None or self.photo is None:
            return
        labels = [Label(f.box, face_label(f), f.match is not None) for f in self.result.faces]
        frame = QSize(self.result.width, self.result.height)
        self.view.set_image(annotate(decode(self.photo.data), labels, frame, selected))

    def _select(self, row: int) -> None:
        if self.result is None or not 0 <= row < len(self.result.faces):
            self.details.clear()
            return
        self._draw(row)
        face = self.result.faces[row]
        nearest = "\n".join(f"{c.name}: {c.confidence:.0%} (distance {c.distance:.3f})" for c in face.candidates)
        self.details.setText(f"Face {row + 1}, nearest people:\n{nearest}" if nearest else "Nobody is enrolled yet.")

    def _clicked(self, point: QPointF) -> None:
        """The face under a click on the photo (the smallest box holding it: a face in front of another)."""
        if self.result is None or not self.result.width:
            return
        scale = self.result.width / self.view.image().width()
        x, y = point.x() * scale, point.y() * scale
        hits = [
            (f.box.width * f.box.height, n)
            for n, f in enumerate(self.result.faces)
            if f.box.left <= x <= f.box.left + f.box.width and f.box.top <= y <= f.box.top + f.box.height
        ]
        if hits:
            self.faces.setCurrentRow(min(hits)[1])

    def _show(self, result: object) -> None:
        assert isinstance(result, Identification) and self.photo is not None
        self._set_busy(False)
        self.result = result
        self._draw()
        self.faces.clear()
        self.details.clear()
        if not result.faces:
            self.faces.addItem("No face was found in this photo.")
            return
        for n, face in enumerate(result.faces, 1):
            item = QListWidgetItem(face_line(n, face))
            item.setForeground(QBrush(KNOWN if face.match else UNKNOWN))
            self.faces.addItem(item)
