"""vision.dlib_engine: HOG detection, 5-point alignment and ResNet descriptors on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.config import DlibEngineSettings
from facegate.vision.dlib_engine import DlibEngine
from facegate.vision.engine import distance
from facegate.vision.images import decode
from facegate.vision.pool import EnginePool
from tests.vision.conftest import DIFFERENT_PAIRS, SAME_PAIRS

LIMIT = 40_000_000


def test_info_needs_no_models() -> None:
    info = DlibEngine(DlibEngineSettings()).info
    assert (info.name, info.metric, info.dim) == ("dlib", "euclidean", 128)


@pytest.mark.parametrize(
    "photo", ["colin_powell/1.jpg", "barack_obama/1.jpg", "deepface_person_01/4.jpg", "alex_lacamoire/1.png"]
)
def test_finds_the_face(dlib_pool: EnginePool, dev: Path, photo: str) -> None:
    # LFW crops are 250 px: HOG only finds their ~90 px faces because small images are upscaled first.
    analysis = dlib_pool.analyze((dev / photo).read_bytes(), max_pixels=LIMIT, max_faces=5, crops=False)
    [face] = analysis.faces
    assert face.box.width >= 40
    assert face.box.left + face.box.width <= analysis.width and face.box.top + face.box.height <= analysis.height
    assert face.embedding.shape == (128,)


def test_several_faces(dlib_pool: EnginePool, dev: Path) -> None:
    analysis = dlib_pool.analyze(
        (dev / "multi" / "two_people.jpg").read_bytes(), max_pixels=LIMIT, max_faces=5, crops=False
    )
    assert len(analysis.faces) == 2


def test_no_face(dlib_pool: EnginePool, dev: Path) -> None:
    data = (dev / "noface" / "banana.jpg").read_bytes()
    analysis = dlib_pool.analyze(data, max_pixels=LIMIT, max_faces=5, crops=False)
    assert analysis.faces == []


def test_same_person_is_closer_than_different_people(dlib_pool: EnginePool, dev: Path) -> None:
    futures = {
        name: dlib_pool.submit((dev / name).read_bytes(), max_pixels=LIMIT, max_faces=1, crops=False)
        for name in {p for pair in (*SAME_PAIRS, *DIFFERENT_PAIRS) for p in pair}
    }
    embeddings = {name: f.result().faces[0].embedding for name, f in futures.items()}

    same = [distance("euclidean", embeddings[a], embeddings[b]) for a, b in SAME_PAIRS]
    different = [distance("euclidean", embeddings[a], embeddings[b]) for a, b in DIFFERENT_PAIRS]
    assert max(same) < min(different), (same, different)
    threshold = dlib_pool.info.threshold
    assert all(d <= threshold for d in same) and all(d > threshold for d in different)


def test_aligned_chip_and_descriptor(dlib_engine: DlibEngine, dev: Path) -> None:
    image = decode((dev / "barack_obama" / "1.jpg").read_bytes(), LIMIT)
    [detection] = dlib_engine.detect(image)
    assert detection.landmarks.shape == (5, 2)
    assert 0.5 < detection.score < 1.0  # the HOG margin squashed into (0, 1)
    chip = dlib_engine.align(image, detection)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    descriptor = dlib_engine.embed(chip)
    assert descriptor.shape == (128,) and descriptor.dtype == np.float32
    assert 0.5 < float(np.linalg.norm(descriptor)) < 1.5
