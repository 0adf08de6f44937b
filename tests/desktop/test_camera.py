"""Snapshots through OpenCV's VideoCapture: no webcam here, so a video file stands in (same code path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate_desktop.camera import snapshot
from facegate_desktop.client import ApiError


def test_a_snapshot_is_a_jpeg_frame(dev: Path) -> None:
    photo = snapshot(str(dev / "video" / "short_hamilton_clip.mp4"))
    frame = cv2.imdecode(np.frombuffer(photo.data, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None and frame.shape[:2] == (360, 640)
    assert photo.filename.startswith("camera-") and photo.filename.endswith(".jpg")


def test_no_camera_is_camera_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ApiError) as caught:
        snapshot(str(tmp_path / "nothing-here"))
    assert caught.value.code == "camera_unavailable"
    with pytest.raises(ApiError):
        snapshot("97")  # a camera index with no device
