from __future__ import annotations

from facegate.config import DlibEngineSettings, OpenCVEngineSettings
from facegate.vision.dlib_engine import DlibEngine
from facegate.vision.factory import build_engine
from facegate.vision.opencv_engine import OpenCVEngine


def test_engine_is_picked_by_the_type_field() -> None:
    assert isinstance(build_engine(OpenCVEngineSettings()), OpenCVEngine)
    assert isinstance(build_engine(DlibEngineSettings()), DlibEngine)


def test_building_an_engine_loads_nothing() -> None:
    engine = build_engine(OpenCVEngineSettings())
    assert engine.info.name == "opencv"
    assert engine.info.dim == 128
