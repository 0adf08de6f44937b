"""The camera preview and photo, through OpenCV's VideoCapture: no webcam here, so a video file stands in
(the same VideoCapture a camera index opens)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PySide6.QtWidgets import QApplication

from facegate_desktop.camera import CameraDialog
from tests.desktop.conftest import wait_until


def test_the_preview_shows_frames_and_take_returns_the_one_on_screen(qapp: QApplication, dev: Path) -> None:
    dialog = CameraDialog(str(dev / "video" / "short_hamilton_clip.mp4"))
    dialog.show()
    try:
        assert not dialog.take_button.isEnabled()  # nothing to take before the first frame
        wait_until(dialog.take_button.isEnabled, 20, "the first frame")
        first = dialog.view.image().copy()
        assert (first.width(), first.height()) == (640, 360)
        wait_until(lambda: dialog.view.image() != first, 20, "the preview to move on")  # it is live
        dialog.take_button.click()
        photo = dialog.result_photo
        assert photo is not None and photo.filename.startswith("camera-") and photo.filename.endswith(".jpg")
        frame = cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_COLOR)
        assert frame is not None and frame.shape[:2] == (360, 640)
        assert dialog.result() == CameraDialog.DialogCode.Accepted
    finally:
        dialog.feed.stop()
    assert dialog.feed._thread is not None and not dialog.feed._thread.is_alive()


def test_no_camera_says_so_and_nothing_can_be_taken(qapp: QApplication, tmp_path: Path) -> None:
    dialog = CameraDialog(str(tmp_path / "no-such-camera"))
    dialog.show()
    try:
        wait_until(lambda: dialog.status.text(), 20, "the error")
        assert dialog.status.text().startswith("No camera at")
        assert not dialog.take_button.isEnabled() and dialog.feed.photo() is None
    finally:
        dialog.reject()
        dialog.feed.stop()
