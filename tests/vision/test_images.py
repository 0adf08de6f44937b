"""vision.images: header checks before decoding, EXIF orientation, truncated files, decompression bombs."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from facegate.errors import PayloadTooLarge, UnsupportedImage
from facegate.vision.engine import distance
from facegate.vision.images import decode, encode_jpeg, probe, scale_to_fit
from facegate.vision.pool import EnginePool
from tests.support import jpeg_bytes, png_declaring, sideways_with_exif, truncated

LIMIT = 40_000_000


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_probe_reads_format_and_size(dev: Path) -> None:
    header = probe((dev / "colin_powell" / "1.jpg").read_bytes(), LIMIT)
    assert (header.format, header.width, header.height) == ("JPEG", 250, 250)
    png = probe((dev / "alex_lacamoire" / "1.png").read_bytes(), LIMIT)
    assert png.format == "PNG"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "unreadable_image"),
        (b"GIF? no: just some text that is long enough to be sniffed", "unsupported_image"),
        (b"%PDF-1.7\n" + b"0" * 100, "unsupported_image"),
        (b"P6\n4 4\n255\n" + bytes(48), "unsupported_image"),  # PPM: readable by Pillow, not accepted by us
    ],
    ids=["empty", "text", "pdf", "ppm"],
)
def test_probe_refuses_what_is_not_a_supported_image(data: bytes, code: str) -> None:
    with pytest.raises(UnsupportedImage) as raised:
        probe(data, LIMIT)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("width", "height"),
    [(8000, 6000), (100_000, 100_000)],
    ids=["over-our-limit", "decompression-bomb"],
)
def test_probe_refuses_too_many_pixels_from_the_header_alone(width: int, height: int) -> None:
    data = png_declaring(width, height)
    assert len(data) < 200
    with pytest.raises(PayloadTooLarge) as raised:
        probe(data, LIMIT)
    assert raised.value.code == "image_too_large"
    with pytest.raises(PayloadTooLarge):
        decode(data, LIMIT)


def test_pixel_limit_is_inclusive() -> None:
    data = _png(Image.new("RGB", (100, 100)))
    assert probe(data, 10_000).width == 100
    with pytest.raises(PayloadTooLarge):
        probe(data, 9_999)


def test_decode_of_a_truncated_jpeg_is_unreadable(dev: Path) -> None:
    data = truncated(dev / "barack_obama" / "1.jpg")
    assert probe(data, LIMIT).format == "JPEG"  # the header alone looks fine
    with pytest.raises(UnsupportedImage) as raised:
        decode(data, LIMIT)
    assert raised.value.code == "unreadable_image"


def test_decode_of_a_truncated_png_is_unreadable(dev: Path) -> None:
    with pytest.raises(UnsupportedImage) as raised:
        decode(truncated(dev / "alex_lacamoire" / "1.png"), LIMIT)
    assert raised.value.code == "unreadable_image"


def test_decode_gives_bgr_uint8_whatever_the_mode() -> None:
    red = decode(_png(Image.new("RGB", (8, 6), (255, 0, 0))), LIMIT)
    assert red.shape == (6, 8, 3) and red.dtype == np.uint8
    assert tuple(red[0, 0]) == (0, 0, 255)
    for mode, colour in (("L", 128), ("RGBA", (0, 255, 0, 128)), ("P", 3)):
        image = decode(_png(Image.new(mode, (5, 4), colour)), LIMIT)  # type: ignore[arg-type]
        assert image.shape == (4, 5, 3)


def test_decode_applies_exif_orientation(dev: Path) -> None:
    photo = dev / "barack_obama" / "1.jpg"
    sideways = sideways_with_exif(photo)
    stored = probe(sideways, LIMIT)
    original = decode(photo.read_bytes(), LIMIT)
    assert (stored.width, stored.height) == (original.shape[0], original.shape[1])  # stored turned

    upright = decode(sideways, LIMIT)

    assert upright.shape == original.shape
    assert np.abs(upright.astype(int) - original.astype(int)).mean() < 4  # same pixels, up to JPEG re-encoding


def test_decode_at_reduced_scale_for_large_jpegs(dev: Path) -> None:
    data = (dev / "deepface_person_03" / "5.jpg").read_bytes()
    header = probe(data, LIMIT)
    assert max(header.width, header.height) >= 1600
    reduced = decode(data, LIMIT, min_side=800)
    assert 800 <= max(reduced.shape[:2]) < max(header.width, header.height)
    assert reduced.shape[1] / reduced.shape[0] == pytest.approx(header.width / header.height, rel=0.01)
    small = dev / "colin_powell" / "1.jpg"
    assert decode(small.read_bytes(), LIMIT, min_side=800).shape == (250, 250, 3)


@pytest.mark.parametrize("photo", ["barack_obama/1.jpg", "deepface_person_03/5.jpg"], ids=["plain", "large"])
def test_face_of_an_exif_rotated_photo_is_found_in_upright_coordinates(
    opencv_pool: EnginePool, dev: Path, photo: str
) -> None:
    path = dev / photo
    kwargs = {"max_pixels": LIMIT, "max_faces": 1, "crops": False}
    upright = opencv_pool.analyze(path.read_bytes(), **kwargs)  # type: ignore[arg-type]
    rotated = opencv_pool.analyze(sideways_with_exif(path), **kwargs)  # type: ignore[arg-type]

    assert (rotated.width, rotated.height) == (upright.width, upright.height)
    [a], [b] = upright.faces, rotated.faces
    tolerance = 0.03 * max(upright.width, upright.height)
    for side in ("left", "top", "width", "height"):
        assert abs(getattr(a.box, side) - getattr(b.box, side)) <= tolerance, (a.box, b.box)
    assert distance("cosine", a.embedding, b.embedding) < 0.15  # the same face, not just the same place


def test_without_exif_the_stored_orientation_is_used(opencv_pool: EnginePool, dev: Path) -> None:
    # Control for the test above: the same sideways pixels without the tag are analysed as stored.
    path = dev / "barack_obama" / "1.jpg"
    with Image.open(path) as img:
        sideways = jpeg_bytes(img.convert("RGB").transpose(Image.Transpose.ROTATE_90))
    analysis = opencv_pool.analyze(sideways, max_pixels=LIMIT, max_faces=1, crops=False)
    with Image.open(path) as img:
        assert (analysis.width, analysis.height) == (img.height, img.width)


def test_encode_jpeg_round_trip() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, :, 2] = 200
    data = encode_jpeg(image)
    assert data[:2] == b"\xff\xd8"
    back = decode(data, LIMIT)
    assert back.shape == image.shape
    assert abs(int(back[10, 15, 2]) - 200) <= 3


@pytest.mark.parametrize(
    ("shape", "max_side", "min_side", "expected_shape", "expected_scale"),
    [
        ((400, 200), 1000, 0, (400, 200), 1.0),
        ((2000, 1000), 1000, 0, (1000, 500), 0.5),
        ((100, 50), 1000, 400, (400, 200), 4.0),
        ((100, 50), 1000, 0, (100, 50), 1.0),
    ],
)
def test_scale_to_fit(
    shape: tuple[int, int],
    max_side: int,
    min_side: int,
    expected_shape: tuple[int, int],
    expected_scale: float,
) -> None:
    image = np.zeros((*shape, 3), dtype=np.uint8)
    scaled, scale = scale_to_fit(image, max_side, min_side)
    assert scaled.shape[:2] == expected_shape
    assert scale == expected_scale


# --- Large canvases in formats that cannot be decoded at reduced scale (a small file, a huge decode) ---

DECODED_LIMIT = 20_000_000  # LimitSettings().max_decoded_pixels
PASTED_AT = (2400, 1000)


def _canvas(dev: Path, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """A plain canvas with a face photo (enlarged 2x) pasted in: compresses to a small lossless file."""
    with Image.open(dev / "barack_obama" / "1.jpg") as face:
        enlarged = face.convert("RGB").resize((face.width * 2, face.height * 2))
    canvas = Image.new("RGB", size, (200, 200, 200))
    canvas.paste(enlarged, PASTED_AT)
    return canvas if mode == "RGB" else canvas.convert(mode)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"compression": "tiff_deflate"} if fmt == "TIFF" else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def canvas_png(dev: Path) -> bytes:
    return _encoded(_canvas(dev, (6000, 3000)), "PNG")  # 18 MP, under the decoded-pixel limit


def test_a_large_lossless_canvas_is_decoded_at_reduced_scale(canvas_png: bytes) -> None:
    assert len(canvas_png) < 5_000_000  # the pasted photo is most of it
    image = decode(canvas_png, LIMIT, min_side=800, max_decoded_pixels=DECODED_LIMIT)
    assert 800 <= image.shape[1] < 1600
    assert image.shape[1] / image.shape[0] == pytest.approx(2.0, rel=0.01)
    assert tuple(image[0, 0]) == (200, 200, 200)


def test_face_on_a_large_lossless_canvas_is_found_in_original_pixels(
    opencv_pool: EnginePool, dev: Path, canvas_png: bytes
) -> None:
    alone = opencv_pool.analyze(
        (dev / "barack_obama" / "1.jpg").read_bytes(), max_pixels=LIMIT, max_faces=1, crops=False
    )
    analysis = opencv_pool.analyze(canvas_png, max_pixels=LIMIT, max_faces=1, crops=True)
    assert (analysis.width, analysis.height) == (6000, 3000)
    [face], [reference] = analysis.faces, alone.faces
    expected = (PASTED_AT[0] + 2 * reference.box.left, PASTED_AT[1] + 2 * reference.box.top, 2 * reference.box.width)
    tolerance = 0.1 * expected[2]
    assert abs(face.box.left - expected[0]) <= tolerance, (face.box, expected)
    assert abs(face.box.top - expected[1]) <= tolerance, (face.box, expected)
    assert abs(face.box.width - expected[2]) <= tolerance, (face.box, expected)
    assert distance("cosine", face.embedding, reference.embedding) < 0.2


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_a_lossless_canvas_over_the_decoded_limit_is_refused_from_its_header(
    dev: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _encoded(Image.new("L", (6000, 4000), 200), fmt)  # 24 MP: under max_pixels, over the decoded limit

    def no_pixels(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_pixels)  # every format's pixel decode goes through it
    with pytest.raises(PayloadTooLarge) as raised:
        decode(data, LIMIT, min_side=800, max_decoded_pixels=DECODED_LIMIT)
    assert raised.value.code == "image_too_large"


def test_a_jpeg_of_the_same_size_is_accepted_since_it_is_decoded_scaled(dev: Path) -> None:
    data = jpeg_bytes(_canvas(dev, (6000, 4000)))
    image = decode(data, LIMIT, min_side=800, max_decoded_pixels=DECODED_LIMIT)
    assert 800 <= image.shape[1] < 1600
    with pytest.raises(PayloadTooLarge):  # at full size it would be over the limit too
        decode(data, LIMIT, max_decoded_pixels=DECODED_LIMIT)


def test_the_pool_applies_the_decoded_pixel_limit(opencv_pool: EnginePool) -> None:
    data = _encoded(Image.new("RGB", (6000, 4000), (200, 200, 200)), "PNG")
    with pytest.raises(PayloadTooLarge) as raised:
        opencv_pool.analyze(data, max_pixels=LIMIT, max_faces=1, crops=False)
    assert raised.value.code == "image_too_large"


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "I;16", "CMYK", "1"])
def test_reduced_decoding_matches_converting_then_reducing_in_every_mode(mode: str) -> None:
    # Modes other than RGB and L are converted a band of rows at a time; the result must be seamless.
    rng = np.random.default_rng(1)
    if mode == "P":
        image = Image.fromarray(rng.integers(0, 64, size=(603, 1011), dtype=np.uint8), "P")
        image.putpalette(rng.integers(0, 256, size=64 * 3, dtype=np.uint8).tolist())
    else:
        image = Image.fromarray(rng.integers(0, 256, size=(603, 1011, 3), dtype=np.uint8)).convert(mode)
    data = _encoded(image, "TIFF" if mode == "CMYK" else "PNG")
    decoded = decode(data, LIMIT, min_side=100)  # reduced 10 times: 250-row bands, the last one partial
    with Image.open(io.BytesIO(data)) as stored:
        expected = np.asarray(stored.convert("RGB").reduce(10))[:, :, ::-1]
    assert decoded.shape == expected.shape
    assert np.array_equal(decoded, expected)


MEASURE_DECODE = """
import sys
from pathlib import Path
from facegate.vision.images import decode

def rss_kb(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))

data = Path(sys.argv[1]).read_bytes()
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current size
before = rss_kb("VmRSS")
image = decode(data, 40_000_000, min_side=800, max_decoded_pixels=20_000_000)
print(image.shape[1], (rss_kb("VmHWM") - before) // 1024)
"""


def test_peak_memory_of_a_large_lossless_decode_is_about_one_decoded_copy(dev: Path, tmp_path: Path) -> None:
    # An RGBA canvas just under the limit: Pillow holds it at 4 bytes a pixel (72 MB); the old chain
    # (exif_transpose copy, RGB copy, packed bytes, BGR copy) peaked at about 5 times that.
    path = tmp_path / "canvas.png"
    path.write_bytes(_encoded(_canvas(dev, (6000, 3000), "RGBA"), "PNG"))
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_DECODE, str(path)], capture_output=True, text=True, check=True, timeout=60
    )
    width, peak_mb = (int(v) for v in result.stdout.split())
    assert width == -(-6000 // 7)  # reduced 7 times, rounded up
    assert peak_mb < 72 * 1.5, f"decoding took {peak_mb} MB at its peak"


def test_check_decodable_refuses_from_the_header_what_decode_would() -> None:
    import io

    from PIL import Image

    from facegate.errors import PayloadTooLarge
    from facegate.vision.images import check_decodable, decode

    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000)).save(buffer, "PNG")  # 6 MP, not scalable by its decoder
    png = buffer.getvalue()
    with pytest.raises(PayloadTooLarge):
        check_decodable(png, 40_000_000, min_side=800, max_decoded_pixels=5_000_000)
    with pytest.raises(PayloadTooLarge):
        decode(png, 40_000_000, min_side=800, max_decoded_pixels=5_000_000)
    assert check_decodable(png, 40_000_000, min_side=800, max_decoded_pixels=6_000_000).width == 3000
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000)).save(buffer, "JPEG")  # libjpeg decodes it at 1/2: 1.5 MP
    jpeg = buffer.getvalue()
    assert check_decodable(jpeg, 40_000_000, min_side=800, max_decoded_pixels=2_000_000).format == "JPEG"
    with pytest.raises(PayloadTooLarge):
        check_decodable(jpeg, 40_000_000, min_side=0, max_decoded_pixels=2_000_000)  # full size: 6 MP
