"""Decoding uploaded bytes into pixels, safely: header checks before decoding, EXIF orientation applied."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from facegate.errors import PayloadTooLarge, UnsupportedImage
from facegate.vision.engine import BGRImage

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})
# The photos commands read from folders (enroll, eval, calibrate), by file name.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


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


def check_decodable(
    data: bytes, max_pixels: int, *, min_side: int = 0, max_decoded_pixels: int | None = None
) -> ImageHeader:
    """Every refusal `decode` would make before decoding a pixel (format, header pixels, the size the decoder
    would produce), from the header alone: cheap enough to run before an image is queued for the engine."""
    header = probe(data, max_pixels)
    if max_decoded_pixels is not None:
        with Image.open(io.BytesIO(data)) as img:
            _draft(img, header, min_side)
            _check_decoded_size(header.format, *img.size, max_decoded_pixels)
    return header


def decode(data: bytes, max_pixels: int, *, min_side: int = 0, max_decoded_pixels: int | None = None) -> BGRImage:
    """Decode to a BGR array with EXIF orientation applied. Truncated or corrupt files raise.

    With `min_side`, a large image is decoded at a reduced scale as long as its longer side stays >= min_side:
    a JPEG by libjpeg itself (1/2, 1/4 or 1/8, several times faster), any other format by an integer box
    reduction right after decoding. Callers compare the result's size with the header's to map coordinates
    back.

    `max_decoded_pixels` bounds the memory a decode may take: the size the decoder itself produces (a JPEG
    after libjpeg's scaling, any other format at full size, about 4 bytes a pixel) is checked against it
    before any pixel is decoded, and refused as image_too_large.
    """
    header = probe(data, max_pixels)
    try:
        rgb, transpose = _decode_reduced(data, header, min_side, max_decoded_pixels)
        # Only the reduced image is left: turning it upright and converting it to an array copy little.
        if transpose is not None:
            rgb = rgb.transpose(transpose)
        pixels = np.asarray(rgb)
    except (OSError, ValueError, SyntaxError) as exc:
        raise UnsupportedImage(f"The image could not be decoded (truncated or corrupt): {exc}") from exc
    bgr: BGRImage = np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), dtype=np.uint8)
    return bgr


def _decode_reduced(
    data: bytes, header: ImageHeader, min_side: int, max_decoded_pixels: int | None
) -> tuple[Image.Image, Image.Transpose | None]:
    """RGB pixels at reduced scale, and how to turn them upright. The full-size decode is freed on return."""
    with Image.open(io.BytesIO(data)) as img:
        _draft(img, header, min_side)
        if max_decoded_pixels is not None:
            _check_decoded_size(header.format, *img.size, max_decoded_pixels)
        img.load()
        transpose = _ORIENTATION.get(img.getexif().get(ExifTags.Base.Orientation, 1))
        reduction = max(img.size) // min_side if min_side else 1
        return _reduced_rgb(img, max(1, reduction)), transpose


def _draft(img: Image.Image, header: ImageHeader, min_side: int) -> None:
    """Ask a JPEG decoder for the smallest scale whose longer side stays >= min_side (no pixels decoded)."""
    longer = max(header.width, header.height)
    if min_side and header.format in _SCALED_BY_DECODER and longer >= 2 * min_side:
        factor = min_side / longer
        img.draft("RGB", (int(header.width * factor) + 1, int(header.height * factor) + 1))


# Formats whose decoder can produce a reduced scale directly (libjpeg's DCT scaling, via Image.draft).
_SCALED_BY_DECODER = frozenset({"JPEG", "MPO"})

# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose does; done
# here on the reduced image, and without exif_transpose's full-size copy when there is nothing to turn).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Rows converted at a time when an image must change mode before it can be reduced.
_BAND_ROWS = 256


def _check_decoded_size(fmt: str, width: int, height: int, limit: int) -> None:
    if width * height > limit:
        how = "at a reduced scale" if fmt in _SCALED_BY_DECODER else "at full size"
        raise PayloadTooLarge(
            f"A {fmt} image is decoded {how}: this one would be {width}x{height} = {width * height} pixels in "
            f"memory; the limit is {limit}. Send a smaller image (or a JPEG, which is decoded at reduced scale).",
            code="image_too_large",
        )


def _reduced_rgb(img: Image.Image, factor: int) -> Image.Image:
    """One RGB image, `factor` times smaller; never a second full-size copy of a large image.

    Pillow's own chain (convert to RGB, then reduce) would copy the whole image once more: a P, RGBA or
    CMYK image is converted one band of rows at a time instead, each band reduced as soon as converted.
    """
    if factor == 1:
        return img if img.mode == "RGB" else img.convert("RGB")
    if img.mode in ("RGB", "L"):
        small = img.reduce(factor)
        return small if small.mode == "RGB" else small.convert("RGB")
    width, height = img.size
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    band = factor * max(1, _BAND_ROWS // factor)  # a multiple of the factor, so bands reduce seamlessly
    for top in range(0, height, band):
        part = img.crop((0, top, width, min(height, top + band))).convert("RGB").reduce(factor)
        out.paste(part, (0, top // factor))
    return out


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
