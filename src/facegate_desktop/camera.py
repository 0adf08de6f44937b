"""The webcam through OpenCV (QtMultimedia is not in PySide6-Essentials; opencv-python-headless comes with
facegate): a live preview in a dialog, and the frame on screen taken as a JPEG photo when the user asks."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from facegate_desktop.client import Photo
from facegate_desktop.photo import PhotoView


def open_capture(source: str) -> cv2.VideoCapture:
    """A camera index ("0"), a device path, a video file or a stream URL."""
    source = source.strip()
    return cv2.VideoCapture(int(source) if source.isdigit() else source)


def to_photo(frame: np.ndarray) -> Photo:
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("the camera's picture could not be encoded")
    return Photo(f"camera-{time.strftime('%Y%m%d-%H%M%S')}.jpg", jpeg.tobytes())


def to_qimage(frame: np.ndarray) -> QImage:
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    return QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class CameraFeed(QObject):
    """Reads frames on a thread of its own. Only the newest frame is kept, and a new one is sent to the GUI
    only once it has shown the previous one: a slow screen skips frames, it never queues them."""

    frame = Signal(QImage)
    failed = Signal(str)

    def __init__(self, source: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._shown = threading.Event()
        self._shown.set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def shown(self) -> None:
        self._shown.set()

    def photo(self) -> Photo | None:
        with self._lock:
            frame = self._latest
        return None if frame is None else to_photo(frame)

    def _run(self) -> None:
        capture = open_capture(self.source)
        try:
            if not capture.isOpened():
                self.failed.emit(f"No camera at {self.source!r}. Check that it is connected and not in use.")
                return
            # A video file is read as fast as it decodes: pace it to its frame rate, as a camera is.
            is_file = capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
            pause = 1.0 / (capture.get(cv2.CAP_PROP_FPS) or 25.0) if is_file else 0.0
            while not self._stop.is_set():
                ok, frame = capture.read()
                if not ok:
                    if self._latest is None:
                        self.failed.emit(f"The camera at {self.source!r} gives no picture.")
                    return  # a file's end: its last frame stays on screen
                with self._lock:
                    self._latest = frame
                if self._shown.is_set():
                    self._shown.clear()
                    self.frame.emit(to_qimage(frame))
                if pause:
                    self._stop.wait(pause)
        finally:
            capture.release()


class CameraDialog(QDialog):
    """The camera's live picture; "Take photo" returns the frame on screen."""

    def __init__(self, source: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Camera")
        self.resize(720, 560)
        self.view = PhotoView(f"Opening the camera {source!r}…")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.take_button = self.buttons.addButton("Take photo", QDialogButtonBox.ButtonRole.AcceptRole)
        self.take_button.setEnabled(False)
        self.buttons.accepted.connect(self._take)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.result_photo: Photo | None = None
        self.feed = CameraFeed(source, self)
        self.feed.frame.connect(self._show_frame, Qt.ConnectionType.QueuedConnection)
        self.feed.failed.connect(self._failed, Qt.ConnectionType.QueuedConnection)
        self.finished.connect(lambda _: self.feed.stop())
        self.feed.start()

    def _show_frame(self, image: QImage) -> None:
        self.view.set_image(image)
        self.take_button.setEnabled(True)
        self.feed.shown()

    def _failed(self, message: str) -> None:
        self.status.setText(message)
        self.status.setStyleSheet("color:#991b1b;")

    def _take(self) -> None:
        self.result_photo = self.feed.photo()
        if self.result_photo is not None:
            self.accept()

    @staticmethod
    def take(source: str, parent: QWidget | None = None) -> Photo | None:
        """Show the camera until the user takes a photo (returned) or cancels (None)."""
        dialog = CameraDialog(source, parent)
        try:
            dialog.exec()
            return dialog.result_photo
        finally:
            dialog.feed.stop()
            dialog.deleteLater()
