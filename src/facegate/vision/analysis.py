"""One call from bytes to faces: decode, detect, align, embed, measure quality, crop."""

from __future__ import annotations

from dataclasses import dataclass

from facegate.vision.engine import BGRImage, Box, Embedding, FaceEngine
from facegate.vision.images import decode, encode_jpeg
from facegate.vision.quality import quality_score, sharpness

CROP_MARGIN = 0.2


@dataclass
class FaceAnalysis:
    box: Box
    detector_score: float
    sharpness: float
    quality: float
    embedding: Embedding
    crop_jpeg: bytes | None


@dataclass
class ImageAnalysis:
    width: int
    height: int
    faces: list[FaceAnalysis]  # largest first


def crop(image: BGRImage, box: Box, margin: float = CROP_MARGIN) -> BGRImage:
    h, w = image.shape[:2]
    dx, dy = round(box.width * margin), round(box.height * margin)
    left, top = max(0, box.left - dx), max(0, box.top - dy)
    right, bottom = min(w, box.left + box.width + dx), min(h, box.top + box.height + dy)
    return image[top:bottom, left:right]


def analyze(engine: FaceEngine, data: bytes, *, max_pixels: int, max_faces: int, crops: bool) -> ImageAnalysis:
    image = decode(data, max_pixels)
    detections = sorted(engine.detect(image), key=lambda d: d.box.area, reverse=True)[:max_faces]
    faces = []
    for det in detections:
        aligned = engine.align(image, det)
        sharp = sharpness(aligned)
        faces.append(
            FaceAnalysis(
                box=det.box,
                detector_score=round(det.score, 4),
                sharpness=round(sharp, 2),
                quality=quality_score(det.box, det.score, sharp),
                embedding=engine.embed(aligned),
                crop_jpeg=encode_jpeg(crop(image, det.box)) if crops else None,
            )
        )
    return ImageAnalysis(width=image.shape[1], height=image.shape[0], faces=faces)
