"""Decoding uploaded bytes into pixels, safely: header checks before decoding, EXIF orientation applied."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegate.errors import PayloadTooLarge, UnsupportedImage
from facegate.vision.engine import BGRImage

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def probe(data: bytes, max_pixels: int) -> ImageHeader:
    """Read only the header: format and size. Raises before any pixel is decoded."""
    if not data:
        raise UnsupportedImage("The file is empty.", code="unreadable_image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"The image has too many pixels: {exc}", code="image_too_large") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImage("The file is not an image we can read.", code="unsupported_image") from exc
    except (OSError, ValueError) as exc:
        raise UnsupportedImage(f"The image header is unreadable: {exc}", code="unreadable_image") from exc
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedImage(
            f"Image format {fmt or 'unknown'} is not supported; use JPEG, PNG, WebP, BMP or TIFF.",
            code="unsupported_image",
        )
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"The image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}.",
            code="image_too_large",
        )
    return ImageHeader(fmt, width, height)


def decode(data: bytes, max_pixels: int, *, min_side: int = 0) -> BGRImage:
    """Decode to a BGR array with EXIF orientation applied. Truncated or corrupt files raise.

    With `min_side`, a large JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, done by libjpeg itself,
    several times faster) as long as its longer side stays >= min_side. Callers compare the result's size
    with the header's to map coordinates back.
    """
    header = probe(data, max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as img:
            longer = max(header.width, header.height)
            if min_side and header.format in ("JPEG", "MPO") and longer >= 2 * min_side:
                factor = min_side / longer
                img.draft("RGB", (int(header.width * factor) + 1, int(header.height * factor) + 1))
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = np.asarray(upright.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnsupportedImage(f"The image could not be decoded (truncated or corrupt): {exc}") from exc
    return np.ascontiguousarray(rgb[:, :, ::-1])


def encode_jpeg(image: BGRImage, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise UnsupportedImage("Could not encode a JPEG crop.")
    return bytes(buf)


def scale_to_fit(image: BGRImage, max_side: int, min_side: int = 0) -> tuple[BGRImage, float]:
    """Resize so the longer side is <= max_side (and >= min_side); returns the image and its scale factor."""
    h, w = image.shape[:2]
    longer = max(h, w)
    scale = 1.0
    if longer > max_side:
        scale = max_side / longer
    elif min_side and longer < min_side:
        scale = min_side / longer
    if scale == 1.0:
        return image, 1.0
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized: BGRImage = np.asarray(
        cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=interp), dtype=np.uint8
    )
    return resized, scale
