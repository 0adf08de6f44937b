"""The fused engine: one YuNet detection, SFace first, and a dlib ResNet descriptor of the same face.

SFace (the primary) gives the embedding that is indexed and searched. dlib's descriptor is taken from the same
detection: its 5-point shape predictor runs inside YuNet's box and the aligned 150 px chip goes to the ResNet.
The chip costs a few milliseconds; the ResNet about ten times what SFace costs, so identify asks for it only
when SFace is unsure (`FusionRule.unsure`), through `embed_secondary`.
"""

from __future__ import annotations

import numpy as np

from facegate.calibration import Calibration, shipped
from facegate.config import DlibEngineSettings, FusionEngineSettings
from facegate.vision.dlib_engine import DlibEngine
from facegate.vision.engine import BGRImage, Detection, Embedding, EngineInfo, FusionRule
from facegate.vision.opencv_engine import OpenCVEngine


class FusionEngine:
    def __init__(self, settings: FusionEngineSettings) -> None:
        self._settings = settings
        self._primary = OpenCVEngine(settings.opencv.model_copy(update={"flip": settings.flip}))
        self._secondary = DlibEngine(DlibEngineSettings(num_jitters=settings.num_jitters, flip=settings.flip))

    @property
    def info(self) -> EngineInfo:
        s = self._settings
        primary, secondary = self._primary.info, self._secondary.info
        return EngineInfo(
            name=primary.name,
            model_version=primary.model_version,
            metric=primary.metric,
            dim=primary.dim,
            threshold=s.threshold,
            kind="fusion",
            secondary=secondary,
            fusion=fusion_rule(shipped(), threshold=s.threshold, band=(s.band_low, s.band_high)),
        )

    def open(self) -> None:
        self._primary.open()
        self._secondary.open()

    def detect(self, image: BGRImage) -> list[Detection]:
        return self._primary.detect(image)

    def align(self, image: BGRImage, detection: Detection) -> BGRImage:
        return self._primary.align(image, detection)

    def embed(self, aligned: BGRImage) -> Embedding:
        return self._primary.embed(aligned)

    def secondary_input(self, image: BGRImage, detection: Detection) -> BGRImage:
        """dlib's aligned chip. Only the face's surroundings are handed over (the chip's padding reaches about
        half a box beyond the face): converting a whole 12 MP photo for each face would cost more than the
        shape predictor itself."""
        box = detection.box
        h, w = image.shape[:2]
        left, top = max(0, box.left - box.width), max(0, box.top - box.height)
        right, bottom = min(w, box.left + 2 * box.width), min(h, box.top + 2 * box.height)
        region = image[top:bottom, left:right]
        corners = np.array(
            [box.left - left, box.top - top, box.left - left + box.width, box.top - top + box.height], dtype=np.float32
        )
        return self._secondary.align(region, Detection(box, detection.score, detection.landmarks, corners))

    def embed_secondary(self, prepared: BGRImage) -> Embedding:
        return self._secondary.embed(prepared)


def fusion_rule(calibration: Calibration, *, threshold: float, band: tuple[float, float]) -> FusionRule:
    """The rule a calibration describes, with a configured threshold and band."""
    c = calibration
    return FusionRule(
        threshold=threshold,
        primary_mean=c.opencv.impostor_mean,
        primary_std=c.opencv.impostor_std,
        secondary_mean=c.fusion.secondary_mean,
        secondary_std=c.fusion.secondary_std,
        fused_mean=c.fusion.fused_mean,
        fused_std=c.fusion.fused_std,
        offset=c.fusion.offset,
        band_low=band[0],
        band_high=band[1],
    )
