"""vision.engine: distances in both metrics, the confidence derived from a distance, flip augmentation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facegate.config import DlibEngineSettings, OpenCVEngineSettings
from facegate.vision.analysis import analyze
from facegate.vision.engine import Box, confidence, distance
from facegate.vision.factory import build_engine


def test_cosine_distance() -> None:
    a = np.array([1.0, 0.0], dtype=np.float32)
    assert distance("cosine", a, a * 3) == pytest.approx(0.0)
    assert distance("cosine", a, np.array([0.0, 2.0], dtype=np.float32)) == pytest.approx(1.0)
    assert distance("cosine", a, -a) == pytest.approx(2.0)
    assert distance("cosine", a, np.zeros(2, dtype=np.float32)) == pytest.approx(1.0)  # no division by zero


def test_cosine_distance_of_identical_embeddings_is_never_negative() -> None:
    # 1 - cos of a float32 vector with itself rounds to -0.0 or -1e-7 for about a quarter of random vectors.
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.normal(size=128).astype(np.float32)
        d = distance("cosine", a, a)
        assert d == 0.0 or d > 0.0
        assert math.copysign(1.0, d) == 1.0  # not -0.0, which a client shows as "-0.0"
        assert distance("cosine", a, a.copy()) >= 0.0


def test_euclidean_distance() -> None:
    a, b = np.array([0.0, 0.0], dtype=np.float32), np.array([3.0, 4.0], dtype=np.float32)
    assert distance("euclidean", a, b) == pytest.approx(5.0)


@pytest.mark.parametrize("threshold", [0.3, 0.6, 1.2])
def test_confidence_is_one_half_at_the_threshold_and_decreasing(threshold: float) -> None:
    assert confidence(threshold, threshold) == pytest.approx(0.5)
    values = [confidence(d, threshold) for d in np.linspace(0.0, 2.0, 41)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values, reverse=True)
    assert confidence(0.0, threshold) > 0.99
    assert confidence(2 * threshold, threshold) < 0.01


def test_confidence_does_not_overflow_far_from_the_threshold() -> None:
    assert confidence(1e6, 0.01) == pytest.approx(0.0, abs=1e-12)
    assert confidence(-1e6, 0.01) == pytest.approx(1.0)


def test_box_area() -> None:
    assert Box(5, 5, 10, 20).area == 200


@pytest.mark.parametrize("kind", ["opencv", "dlib"])
def test_flip_augmentation_is_its_own_embedding_space_and_stays_close(kind: str, dev: Path) -> None:
    make = OpenCVEngineSettings if kind == "opencv" else DlibEngineSettings
    plain, flipped = build_engine(make()), build_engine(make(flip=True))
    plain.open()
    flipped.open()
    assert flipped.info.model_version == plain.info.model_version + "+flip"  # never compared with plain ones
    data = (dev / "colin_powell" / "1.jpg").read_bytes()
    a = analyze(plain, data, max_pixels=40_000_000, max_faces=1, crops=False).faces[0].embedding
    b = analyze(flipped, data, max_pixels=40_000_000, max_faces=1, crops=False).faces[0].embedding
    metric = plain.info.metric
    assert 0.0 < distance(metric, a, b) < plain.info.threshold / 2  # same person, a different (averaged) vector
