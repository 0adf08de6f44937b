"""A webcam snapshot through OpenCV (QtMultimedia is not in PySide6-Essentials; opencv-python-headless is
already installed with facegate). Blocking: call it from a worker thread."""

from __future__ import annotations

import time

import cv2

from facegate_desktop.client import ApiError, Photo

# Cameras adjust exposure over their first frames: the first one is often dark.
WARM_UP_FRAMES = 5


def snapshot(source: str) -> Photo:
    """One JPEG frame from a camera index ("0"), a device path, a video file or a stream URL."""
    capture = cv2.VideoCapture(int(source) if source.strip().isdigit() else source.strip())
    try:
        if not capture.isOpened():
            raise ApiError("camera_unavailable", f"No camera at {source!r}. Check that it is connected and free.")
        frame = None
        for _ in range(WARM_UP_FRAMES):
            ok, image = capture.read()
            if ok:
                frame = image
        if frame is None:
            raise ApiError("camera_unavailable", f"The camera at {source!r} gave no picture.")
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise ApiError("camera_unavailable", "The camera's picture could not be encoded.")
        return Photo(f"camera-{time.strftime('%Y%m%d-%H%M%S')}.jpg", jpeg.tobytes())
    finally:
        capture.release()
