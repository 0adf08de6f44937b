"""The thresholds and score normalisation the package ships, as written by `facegate calibrate`.

`calibration.json` beside this module is the output of `facegate calibrate ../shared/faces/calib` (see
`facegate.services.calibration` for the method). Engine settings take their default thresholds from it, so a
new calibration changes what ships in one reviewed file.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import BaseModel, Field

SHIPPED = Path(__file__).with_name("calibration.json")


class EngineCalibration(BaseModel):
    """One engine's distances on the calibration set's different-person pairs, and its threshold."""

    threshold: float = Field(gt=0.0, lt=2.0)
    impostor_mean: float
    impostor_std: float = Field(gt=0.0)


class FusionCalibration(BaseModel):
    """The fused engine: see `facegate.vision.engine.FusionRule`. Its primary normalisation is `opencv`'s;
    the secondary one is of dlib descriptors taken inside YuNet's boxes."""

    threshold: float = Field(gt=0.0, lt=2.0)
    secondary_mean: float
    secondary_std: float = Field(gt=0.0)
    fused_mean: float
    fused_std: float = Field(gt=0.0)
    offset: float
    band_low: float
    band_high: float


class Calibration(BaseModel):
    faceset: str
    created: str
    # The operating point: the per-pair false-match rate the thresholds are set for, and what it means.
    target_false_match_rate: float = Field(gt=0.0, lt=1.0)
    gallery_people: int = Field(ge=1)
    false_accepts: float = Field(gt=0.0, lt=1.0)
    operating_point: str
    # Made with flip test-time augmentation on (FACEGATE_ENGINE__FLIP).
    flip: bool = False
    opencv: EngineCalibration
    dlib: EngineCalibration
    fusion: FusionCalibration


@functools.cache
def shipped() -> Calibration:
    return Calibration.model_validate_json(SHIPPED.read_text())
