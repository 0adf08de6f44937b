"""One call from bytes to faces: decode, detect, align, embed, measure quality, crop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from facegate.vision.engine import BGRImage, Box, Embedding, FaceEngine, FusedFaceEngine
from facegate.vision.images import decode, encode_jpeg, probe
from facegate.vision.quality import quality_score, sharpness

CROP_MARGIN = 0.2

# What a fused engine does with its second descriptor: nothing, prepare its input (the aligned chip, for a
# later `embed_secondary` if the decision needs it), or compute it now (enrollment stores both).
Secondary = Literal["none", "input", "embed"]


@dataclass
class FaceAnalysis:
    box: Box
    detector_score: float
    sharpness: float
    quality: float
    embedding: Embedding
    crop_jpeg: bytes | None
    secondary: Embedding | None = None
    secondary_input: BGRImage | None = None


@dataclass
class ImageAnalysis:
    width: int
    height: int
    faces: list[FaceAnalysis]  # the largest faces, up to the caller's max_faces, largest first
    boxes: list[Box]  # every face found, largest first


def crop(image: BGRImage, box: Box, margin: float = CROP_MARGIN) -> BGRImage:
    h, w = image.shape[:2]
    dx, dy = round(box.width * margin), round(box.height * margin)
    left, top = max(0, box.left - dx), max(0, box.top - dy)
    right, bottom = min(w, box.left + box.width + dx), min(h, box.top + box.height + dy)
    return image[top:bottom, left:right]


def _to_original(box: Box, scale: float, width: int, height: int) -> Box:
    if scale == 1.0:
        return box
    left, top = round(box.left / scale), round(box.top / scale)
    right = min(width, round((box.left + box.width) / scale))
    bottom = min(height, round((box.top + box.height) / scale))
    return Box(left, top, max(1, right - left), max(1, bottom - top))


def analyze(
    engine: FaceEngine,
    data: bytes,
    *,
    max_pixels: int,
    max_faces: int,
    crops: bool,
    decode_side: int = 0,
    max_decoded_pixels: int | None = None,
    secondary: Secondary = "none",
) -> ImageAnalysis:
    """Find every face; align, embed and measure the `max_faces` largest.

    Boxes are in pixels of the upright original image, even when a large image was decoded at reduced scale
    (`decode_side`: the smallest longer side the decoded image may have; 0 decodes at full size).
    `max_decoded_pixels`: see `images.decode`. `secondary`: see `Secondary` (ignored by single engines).
    """
    header = probe(data, max_pixels)
    image = decode(data, max_pixels, min_side=decode_side, max_decoded_pixels=max_decoded_pixels)
    h, w = image.shape[:2]
    # EXIF rotation may have swapped the header's width and height.
    rotated = (w > h) != (header.width > header.height)
    width, height = (header.height, header.width) if rotated else (header.width, header.height)
    return analyze_image(
        engine, image, width=width, height=height, max_faces=max_faces, crops=crops, secondary=secondary
    )


def analyze_image(
    engine: FaceEngine,
    image: BGRImage,
    *,
    width: int,
    height: int,
    max_faces: int,
    crops: bool,
    secondary: Secondary = "none",
    select: Callable[[Box], bool] | None = None,
) -> ImageAnalysis:
    """`analyze` of an already decoded image (a video frame) that shows the original `width` x `height` at
    reduced scale or full size. `select`: which of the `max_faces` largest faces (boxes in original pixels) to
    align and embed (default: all); a video track already identified needs no embedding every frame."""
    scale = image.shape[1] / width
    detections = sorted(engine.detect(image), key=lambda d: d.box.area, reverse=True)
    fused = engine if secondary != "none" and isinstance(engine, FusedFaceEngine) else None
    faces = []
    for det in detections[:max_faces]:
        box = _to_original(det.box, scale, width, height)
        if select is not None and not select(box):
            continue
        aligned = engine.align(image, det)
        sharp = sharpness(aligned)
        chip = fused.secondary_input(image, det) if fused else None
        faces.append(
            FaceAnalysis(
                box=box,
                detector_score=round(det.score, 4),
                sharpness=round(sharp, 2),
                quality=quality_score(box, det.score, sharp),
                embedding=engine.embed(aligned),
                crop_jpeg=encode_jpeg(crop(image, det.box)) if crops else None,
                secondary=fused.embed_secondary(chip) if fused and chip is not None and secondary == "embed" else None,
                secondary_input=chip if secondary == "input" else None,
            )
        )
    boxes = [_to_original(d.box, scale, width, height) for d in detections]
    return ImageAnalysis(width=width, height=height, faces=faces, boxes=boxes)
