"""vision.quality: sharpness, the quality score shown to users, and the enrollment gates."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import EnrollSettings
from facegate.vision.engine import Box
from facegate.vision.quality import enrollment_rejection, quality_score, sharpness


def _checkerboard(side: int, cell: int) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    board = (((yy // cell) + (xx // cell)) % 2 * 255).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def test_flat_image_has_no_sharpness() -> None:
    assert sharpness(np.full((112, 112, 3), 128, dtype=np.uint8)) == 0.0


def test_fine_detail_is_sharper_than_coarse() -> None:
    assert sharpness(_checkerboard(112, 2)) > sharpness(_checkerboard(112, 28)) > 0


def _waves(side: int, periods: int) -> np.ndarray:
    x = np.linspace(0.0, 2 * np.pi * periods, side, endpoint=False)
    row = (127.5 + 127.5 * np.sin(x)).astype(np.uint8)
    return np.repeat(np.tile(row, (side, 1))[:, :, None], 3, axis=2)


def test_sharpness_is_measured_at_one_size() -> None:
    # A dlib chip (150 px) and an SFace crop (112 px) of the same content score alike.
    assert sharpness(_waves(150, 8)) == pytest.approx(sharpness(_waves(112, 8)), rel=0.1)
    assert sharpness(_waves(112, 16)) > 2 * sharpness(_waves(112, 8))


def test_quality_score_is_in_unit_range_and_rewards_size_sharpness_and_confidence() -> None:
    big, small = Box(0, 0, 120, 120), Box(0, 0, 40, 40)
    best = quality_score(big, 1.0, 500.0)
    assert best == 1.0
    assert quality_score(small, 1.0, 500.0) < best
    assert quality_score(big, 1.0, 10.0) < best
    assert quality_score(big, 0.8, 500.0) < best
    assert quality_score(Box(0, 0, 1, 1), 0.0, 0.0) == 0.0


@pytest.mark.parametrize(
    ("box", "score", "sharp", "reason"),
    [
        (Box(0, 0, 100, 100), 0.95, 200.0, None),
        (Box(0, 0, 100, 30), 0.95, 200.0, "face_too_small"),  # the shorter side counts
        (Box(0, 0, 100, 100), 0.10, 200.0, "low_quality"),
        (Box(0, 0, 100, 100), 0.95, 1.0, "blurry"),
        (Box(0, 0, 20, 20), 0.10, 1.0, "face_too_small"),  # size is checked first
    ],
)
def test_enrollment_rejection(box: Box, score: float, sharp: float, reason: str | None) -> None:
    rules = EnrollSettings(min_face_size=40, min_detector_score=0.5, min_sharpness=15.0)
    assert enrollment_rejection(box, score, sharp, rules) == reason
