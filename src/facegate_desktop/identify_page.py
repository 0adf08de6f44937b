"""Identify: a photo from a file or the camera, its faces boxed and named on it, and the list of who is who."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
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
        self.faces = QListWidget()
        self.faces.setWordWrap(True)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(self.faces)
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

    def _show(self, result: object) -> None:
        assert isinstance(result, Identification) and self.photo is not None
        self._set_busy(False)
        self.result = result
        image = decode(self.photo.data)
        labels = [Label(f.box, face_label(f), f.match is not None) for f in result.faces]
        self.view.set_image(annotate(image, labels, QSize(result.width, result.height)))
        self.faces.clear()
        if not result.faces:
            self.faces.addItem("No face was found in this photo.")
            return
        for n, face in enumerate(result.faces, 1):
            item = QListWidgetItem(face_line(n, face))
            item.setForeground(QBrush(KNOWN if face.match else UNKNOWN))
            item.setToolTip(
                "\n".join(f"{c.name}: {c.confidence:.0%} (distance {c.distance:.3f})" for c in face.candidates)
                or "Nobody is enrolled yet."
            )
            self.faces.addItem(item)
