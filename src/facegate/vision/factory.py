"""Pick the engine named by configuration."""

from __future__ import annotations

from facegate.config import DlibEngineSettings, EngineSettings, FusionEngineSettings, OpenCVEngineSettings
from facegate.vision.engine import FaceEngine


def build_engine(settings: EngineSettings) -> FaceEngine:
    if isinstance(settings, OpenCVEngineSettings):
        from facegate.vision.opencv_engine import OpenCVEngine

        return OpenCVEngine(settings)
    if isinstance(settings, DlibEngineSettings):
        from facegate.vision.dlib_engine import DlibEngine

        return DlibEngine(settings)
    if isinstance(settings, FusionEngineSettings):
        from facegate.vision.fusion_engine import FusionEngine

        return FusionEngine(settings)
    raise TypeError(f"Unknown engine settings: {type(settings).__name__}")
