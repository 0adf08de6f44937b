"""dlib engine: HOG (or CNN) detection, 5-point alignment, ResNet 128-d descriptor.

Weights come from the face-recognition-models package.
"""

from __future__ import annotations

from typing import Any

import cv2
import dlib
import face_recognition_models
import numpy as np

from facegate.config import DlibEngineSettings
from facegate.vision.engine import BGRImage, Box, Detection, Embedding, EngineInfo
from facegate.vision.images import scale_to_fit

CHIP_SIZE = 150
CHIP_PADDING = 0.25


class DlibEngine:
    def __init__(self, settings: DlibEngineSettings) -> None:
        self._settings = settings
        self._detector: Any = None
        self._shape: Any = None
        self._encoder: Any = None

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(
            name="dlib",
            # The detector does not change the embedding space; flip test-time augmentation does.
            model_version="resnet-v1+5pt-chip150" + ("+flip" if self._settings.flip else ""),
            metric="euclidean",
            dim=128,
            threshold=self._settings.threshold,
        )

    def open(self) -> None:
        if self._settings.detector == "cnn":
            self._detector = dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detector_model_location()
            )
        else:
            self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self._encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def _raw_detections(self, rgb: Any) -> list[tuple[Any, float]]:
        if self._settings.detector == "cnn":
            return [(d.rect, float(d.confidence)) for d in self._detector(rgb, 0)]
        rects, scores, _ = self._detector.run(rgb, 0, 0.0)
        return list(zip(rects, (float(s) for s in scores), strict=True))

    def detect(self, image: BGRImage) -> list[Detection]:
        s = self._settings
        # HOG's window is 80 px: scale small images up and large ones down so faces land in its range.
        small, scale = scale_to_fit(image, s.max_detect_side, s.min_detect_side)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        full_rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        img_h, img_w = image.shape[:2]
        detections = []
        for rect, margin in self._raw_detections(rgb):
            full = dlib.rectangle(
                round(rect.left() / scale),
                round(rect.top() / scale),
                round(rect.right() / scale),
                round(rect.bottom() / scale),
            )
            left, top = max(0, full.left()), max(0, full.top())
            right, bottom = min(img_w, full.right()), min(img_h, full.bottom())
            if right <= left or bottom <= top:
                continue
            shape = self._shape(full_rgb, full)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            # HOG gives an SVM margin (>= 0 here); squash it into (0, 1) so quality rules read alike.
            score = margin if s.detector == "cnn" else float(1.0 / (1.0 + np.exp(-(2.0 * margin + 1.0))))
            raw = np.array([full.left(), full.top(), full.right(), full.bottom()], dtype=np.float32)
            detections.append(Detection(Box(left, top, right - left, bottom - top), score, points, raw))
        return detections

    def align(self, image: BGRImage, detection: Detection) -> BGRImage:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        left, top, right, bottom = (int(v) for v in detection.raw)
        shape = self._shape(rgb, dlib.rectangle(left, top, right, bottom))
        chip = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        aligned: BGRImage = np.asarray(cv2.cvtColor(np.asarray(chip), cv2.COLOR_RGB2BGR), dtype=np.uint8)
        return aligned

    def embed(self, aligned: BGRImage) -> Embedding:
        rgb = cv2.cvtColor(aligned, cv2.COLOR_BGR2RGB)
        chips = [rgb, np.ascontiguousarray(rgb[:, ::-1])] if self._settings.flip else [rgb]
        vectors = [np.asarray(self._encoder.compute_face_descriptor(c, self._settings.num_jitters)) for c in chips]
        result: Embedding = np.mean(vectors, axis=0).astype(np.float32)
        return result
