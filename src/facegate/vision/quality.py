"""Face quality: is this face good enough to enroll, and a single score to show users."""

from __future__ import annotations

import cv2
import numpy as np

from facegate.config import EnrollSettings
from facegate.vision.engine import BGRImage, Box

# Aligned crops differ in size by engine (SFace 112 px, dlib 150 px); sharpness is measured at one size.
SHARPNESS_SIDE = 112


def sharpness(aligned: BGRImage) -> float:
    """Variance of the Laplacian of the aligned face: low means blurred or flat."""
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    if gray.shape[0] != SHARPNESS_SIDE:
        gray = cv2.resize(gray, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def quality_score(box: Box, detector_score: float, sharp: float) -> float:
    """0..1: detector confidence, scaled down for small or blurred faces."""
    size_factor = min(1.0, min(box.width, box.height) / 80.0)
    sharp_factor = min(1.0, sharp / 100.0)
    return round(float(np.clip(detector_score * size_factor * (0.5 + 0.5 * sharp_factor), 0.0, 1.0)), 4)


def enrollment_rejection(box: Box, detector_score: float, sharp: float, rules: EnrollSettings) -> str | None:
    """The reason code that rules this face out for enrollment, or None when it is usable."""
    if min(box.width, box.height) < rules.min_face_size:
        return "face_too_small"
    if detector_score < rules.min_detector_score:
        return "low_quality"
    if sharp < rules.min_sharpness:
        return "blurry"
    return None
