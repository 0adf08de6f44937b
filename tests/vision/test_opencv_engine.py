"""vision.opencv_engine: YuNet detection and SFace embeddings on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.config import OpenCVEngineSettings
from facegate.errors import Unavailable
from facegate.vision.engine import Embedding, distance
from facegate.vision.images import decode
from facegate.vision.opencv_engine import OpenCVEngine, model_path
from tests.vision.conftest import DIFFERENT_PAIRS, SAME_PAIRS

LIMIT = 40_000_000


def _largest_embedding(engine: OpenCVEngine, path: Path) -> Embedding:
    image = decode(path.read_bytes(), LIMIT)
    detection = max(engine.detect(image), key=lambda d: d.box.area)
    return engine.embed(engine.align(image, detection))


def test_info_needs_no_models() -> None:
    info = OpenCVEngine(OpenCVEngineSettings(threshold=0.5)).info
    assert (info.name, info.metric, info.dim, info.threshold) == ("opencv", "cosine", 128, 0.5)
    assert "yunet" in info.model_version and "sface" in info.model_version


def test_model_files_ship_with_the_wheel() -> None:
    assert model_path("face_detection_yunet_2023mar_int8bq.onnx").stat().st_size > 10_000
    with pytest.raises(Unavailable):
        model_path("no_such_model.onnx")


@pytest.mark.parametrize("photo", ["colin_powell/1.jpg", "barack_obama/1.jpg", "alex_lacamoire/1.png"])
def test_one_face_with_landmarks_inside_its_box(opencv_engine: OpenCVEngine, dev: Path, photo: str) -> None:
    image = decode((dev / photo).read_bytes(), LIMIT)
    [detection] = opencv_engine.detect(image)
    box = detection.box
    assert box.left >= 0 and box.top >= 0
    assert box.left + box.width <= image.shape[1] and box.top + box.height <= image.shape[0]
    assert 0.7 <= detection.score <= 1.0
    assert detection.landmarks.shape == (5, 2)
    xs, ys = detection.landmarks[:, 0], detection.landmarks[:, 1]
    assert (box.left <= xs).all() and (xs <= box.left + box.width).all()
    assert (box.top <= ys).all() and (ys <= box.top + box.height).all()


def test_no_face_in_a_landscape(opencv_engine: OpenCVEngine, dev: Path) -> None:
    assert opencv_engine.detect(decode((dev / "noface" / "pilatus800.jpg").read_bytes(), LIMIT)) == []


def test_boxes_are_in_pixels_of_the_image_given(opencv_engine: OpenCVEngine, dev: Path) -> None:
    # Detection runs on a scaled copy of large images; the boxes come back in the caller's pixels.
    import cv2

    image = decode((dev / "colin_powell" / "1.jpg").read_bytes(), LIMIT)
    big = cv2.resize(image, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    [small_face] = opencv_engine.detect(image)
    [big_face] = opencv_engine.detect(big)
    scale = 2000 / 250
    assert big_face.box.left == pytest.approx(small_face.box.left * scale, abs=0.05 * 2000)
    assert big_face.box.width == pytest.approx(small_face.box.width * scale, abs=0.05 * 2000)


def test_aligned_crop_and_embedding(opencv_engine: OpenCVEngine, dev: Path) -> None:
    image = decode((dev / "colin_powell" / "1.jpg").read_bytes(), LIMIT)
    [detection] = opencv_engine.detect(image)
    aligned = opencv_engine.align(image, detection)
    assert aligned.shape == (112, 112, 3)
    embedding = opencv_engine.embed(aligned)
    assert embedding.shape == (128,) and embedding.dtype == np.float32
    assert float(np.linalg.norm(embedding)) == pytest.approx(1.0, abs=1e-5)


def test_same_person_is_closer_than_different_people(opencv_engine: OpenCVEngine, dev: Path) -> None:
    def pair_distance(a: str, b: str) -> float:
        embed_a, embed_b = (_largest_embedding(opencv_engine, dev / p) for p in (a, b))
        return distance("cosine", embed_a, embed_b)

    same = [pair_distance(a, b) for a, b in SAME_PAIRS]
    different = [pair_distance(a, b) for a, b in DIFFERENT_PAIRS]
    assert max(same) < min(different), (same, different)
    threshold = opencv_engine.info.threshold
    assert all(d <= threshold for d in same) and all(d > threshold for d in different)
