"""Pick the engine named by configuration."""

from __future__ import annotations

import logging

from facegate.calibration import shipped
from facegate.config import DlibEngineSettings, EngineSettings, FusionEngineSettings, OpenCVEngineSettings
from facegate.vision.engine import FaceEngine

log = logging.getLogger(__name__)


def build_engine(settings: EngineSettings) -> FaceEngine:
    if settings.flip != shipped().flip and "threshold" not in settings.model_fields_set:
        log.warning(
            "flip augmentation is %s but the shipped thresholds were calibrated with it %s: run `facegate "
            "calibrate` with this setting, or set the threshold yourself",
            "on" if settings.flip else "off",
            "on" if shipped().flip else "off",
        )
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
