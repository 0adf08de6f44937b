"""vision.analysis: bytes to faces, largest first, boxes in pixels of the original upright image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.config import OpenCVEngineSettings
from facegate.vision.analysis import analyze, crop
from facegate.vision.engine import Box
from facegate.vision.images import decode
from facegate.vision.opencv_engine import OpenCVEngine

LIMIT = 40_000_000


def test_crop_adds_a_margin_and_stops_at_the_border() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    assert crop(image, Box(50, 40, 20, 10)).shape == (14, 28, 3)
    assert crop(image, Box(0, 0, 20, 10)).shape == (12, 24, 3)
    assert crop(image, Box(190, 95, 10, 5)).shape == (6, 12, 3)


def test_faces_are_largest_first_and_capped_at_max_faces(opencv_engine: OpenCVEngine, dev: Path) -> None:
    data = (dev / "multi" / "multiface.jpg").read_bytes()
    every = analyze(opencv_engine, data, max_pixels=LIMIT, max_faces=20, crops=False)
    assert len(every.faces) >= 5
    areas = [f.box.area for f in every.faces]
    assert areas == sorted(areas, reverse=True)
    assert [f.box for f in every.faces] == every.boxes

    two = analyze(opencv_engine, data, max_pixels=LIMIT, max_faces=2, crops=False)
    assert [f.box for f in two.faces] == every.boxes[:2]
    assert two.boxes == every.boxes  # every face is still counted (enrollment needs them to judge dominance)


def test_face_fields(opencv_engine: OpenCVEngine, dev: Path) -> None:
    analysis = analyze(
        opencv_engine, (dev / "colin_powell" / "1.jpg").read_bytes(), max_pixels=LIMIT, max_faces=5, crops=True
    )
    assert (analysis.width, analysis.height) == (250, 250)
    [face] = analysis.faces
    assert 0.0 < face.detector_score <= 1.0
    assert face.sharpness > 0
    assert 0.0 < face.quality <= 1.0
    assert face.embedding.shape == (128,) and face.embedding.dtype == np.float32
    assert face.crop_jpeg is not None and face.crop_jpeg[:2] == b"\xff\xd8"


def test_no_crops_unless_asked(opencv_engine: OpenCVEngine, dev: Path) -> None:
    analysis = analyze(
        opencv_engine, (dev / "colin_powell" / "1.jpg").read_bytes(), max_pixels=LIMIT, max_faces=5, crops=False
    )
    assert analysis.faces[0].crop_jpeg is None


def test_no_face(opencv_engine: OpenCVEngine, dev: Path) -> None:
    analysis = analyze(
        opencv_engine, (dev / "noface" / "banana.jpg").read_bytes(), max_pixels=LIMIT, max_faces=5, crops=True
    )
    assert analysis.faces == [] and analysis.boxes == []
    assert analysis.width > 0


def test_reduced_decoding_reports_boxes_in_original_pixels(dev: Path) -> None:
    data = (dev / "deepface_person_03" / "5.jpg").read_bytes()  # 4352 x 2903
    engine = OpenCVEngine(OpenCVEngineSettings(max_detect_side=800))
    engine.open()
    full = analyze(engine, data, max_pixels=LIMIT, max_faces=1, crops=False, decode_side=0)
    reduced = analyze(engine, data, max_pixels=LIMIT, max_faces=1, crops=False, decode_side=800)

    assert (reduced.width, reduced.height) == (full.width, full.height) == (4352, 2903)
    assert max(decode(data, LIMIT, min_side=800).shape) < 4352  # it really was decoded smaller
    a, b = full.faces[0].box, reduced.faces[0].box
    for side in ("left", "top", "width", "height"):
        assert getattr(a, side) == pytest.approx(getattr(b, side), abs=0.02 * 4352), (a, b)
