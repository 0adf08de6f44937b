"""Engines loaded in this process (module-scoped), for tests of engine internals the pool does not expose."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from facegate.config import DlibEngineSettings, OpenCVEngineSettings
from facegate.vision.dlib_engine import DlibEngine
from facegate.vision.opencv_engine import OpenCVEngine

# Fixed pairs from pairs.csv: same person, and different people.
SAME_PAIRS = [
    ("barack_obama/1.jpg", "barack_obama/2.jpg"),
    ("deepface_person_01/1.jpg", "deepface_person_01/5.jpg"),
    ("deepface_person_03/2.jpg", "deepface_person_03/3.jpg"),
    ("ariel_sharon/5.jpg", "ariel_sharon/7.jpg"),
    ("colin_powell/1.jpg", "colin_powell/2.jpg"),
]
DIFFERENT_PAIRS = [
    ("alex_lacamoire/1.png", "deepface_person_01/8.jpg"),
    ("amy_adams/1.jpg", "ariel_sharon/1.jpg"),
    ("colin_powell/1.jpg", "deepface_person_01/6.jpg"),
    ("deepface_person_03/4.jpg", "joe_biden/1.jpg"),
    ("colin_powell/1.jpg", "george_w_bush/1.jpg"),
]


@pytest.fixture(scope="module")
def opencv_engine() -> OpenCVEngine:
    engine = OpenCVEngine(OpenCVEngineSettings())
    engine.open()
    return engine


@pytest.fixture(scope="module")
def dlib_engine() -> Iterator[DlibEngine]:
    engine = DlibEngine(DlibEngineSettings())
    engine.open()
    yield engine
