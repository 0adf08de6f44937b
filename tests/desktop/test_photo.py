"""Boxes and names drawn on photos: where, in which colour, scaled to the server's frame, tags kept apart."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from facegate_desktop.client import Box
from facegate_desktop.photo import KNOWN, UNKNOWN, Label, PhotoView, _place, annotate, decode


def grey(width: int, height: int) -> QImage:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("#808080"))
    return image


def test_boxes_are_drawn_in_the_colour_of_known_and_unknown(qapp: QApplication) -> None:
    out = annotate(
        grey(800, 600), [Label(Box(100, 200, 100, 120), "Ada", True), Label(Box(500, 200, 90, 90), "", False)]
    )
    assert out.pixelColor(100, 260) == KNOWN  # left edge of the first box
    assert out.pixelColor(500, 245) == UNKNOWN
    assert out.pixelColor(150, 260) == QColor("#808080")  # inside the box: the photo untouched
    # The name's tag sits above the first box; the unnamed box has none.
    assert out.pixelColor(102, 190) == KNOWN
    assert out.pixelColor(502, 190) == QColor("#808080")


def test_boxes_in_the_servers_frame_are_scaled_onto_the_image(qapp: QApplication) -> None:
    # The server measured a 1600x1200 photo; the image here is half that size.
    out = annotate(grey(800, 600), [Label(Box(200, 400, 200, 200), "", True)], QSize(1600, 1200))
    assert out.pixelColor(100, 250) == KNOWN
    assert out.pixelColor(150, 250) == QColor("#808080")  # inside
    assert out.pixelColor(200, 250) == KNOWN  # right edge (400 on the server's frame)
    assert out.pixelColor(250, 250) == QColor("#808080")


def test_tags_of_faces_side_by_side_do_not_overlap() -> None:
    bounds = QRect(0, 0, 1000, 800)
    first = _place(QRect(300, 300, 100, 100), QSize(250, 30), [], bounds)
    second = _place(QRect(420, 290, 100, 100), QSize(250, 30), [first], bounds)
    assert first == QRect(300, 270, 250, 30)  # above its box
    assert not first.intersects(second) and bounds.contains(second)
    # A face at the top edge: the tag goes below it, never off the image.
    top = _place(QRect(10, 0, 100, 100), QSize(80, 30), [], bounds)
    assert bounds.contains(top) and top.top() == 100


def test_decode_applies_exif_orientation(qapp: QApplication) -> None:
    # Stored 300x200 with "rotate 90" in EXIF: shown (and boxed by the server) as 200x300.
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (300, 200), "red").save(buffer, "JPEG", exif=exif)
    image = decode(buffer.getvalue())
    assert (image.width(), image.height()) == (200, 300)
    assert decode(b"not an image").isNull()


def test_the_view_scales_the_photo_to_fit(qapp: QApplication, dev: Path) -> None:
    view = PhotoView("hint")
    view.resize(400, 300)
    view.set_image(decode((dev / "multi" / "obama_and_biden.jpg").read_bytes()))
    shot = view.grab().toImage()
    assert shot.size() == QSize(400, 300)
    # The photo (wider than 4:3) fills the width; bars of the background above and below.
    assert shot.pixelColor(200, 150) != shot.pixelColor(200, 1)


def test_a_click_on_the_view_is_reported_in_image_pixels(qapp: QApplication) -> None:
    view = PhotoView("hint")
    view.resize(400, 400)
    view.set_image(grey(800, 400))  # drawn 400x200, centred: rows 100-300 of the widget
    clicks: list[tuple[float, float]] = []
    view.clicked.connect(lambda p: clicks.append((p.x(), p.y())))
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(100, 150))
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(100, 50))  # a bar
    assert clicks == [(200.0, 100.0)]


def test_the_selected_box_is_drawn_thicker(qapp: QApplication) -> None:
    # 1500 px: lines of 5 px, 15 px when selected (centred on the box's edge).
    labels = [Label(Box(100, 100, 400, 400), "", True)]
    plain, chosen = annotate(grey(1500, 1500), labels), annotate(grey(1500, 1500), labels, selected=0)
    assert plain.pixelColor(105, 300) == QColor("#808080") and chosen.pixelColor(105, 300) == KNOWN
