"""A photo with its faces: boxes and names drawn on the image itself, shown scaled to fit."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QBuffer, QByteArray, QPointF, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QImageReader, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from facegate_desktop.client import Box

KNOWN = QColor("#16a34a")
UNKNOWN = QColor("#ea580c")


@dataclass(frozen=True)
class Label:
    box: Box
    text: str  # "" for a box alone
    known: bool


def decode(data: bytes) -> QImage:
    """The image as the server sees it: EXIF orientation applied (the API's boxes are in that frame)."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    reader = QImageReader(buffer)
    reader.setAutoTransform(True)
    image = reader.read()
    return image  # null when Qt cannot read it; the server says why


def annotate(image: QImage, labels: list[Label], frame: QSize | None = None, selected: int | None = None) -> QImage:
    """A copy of `image` with each label's box and text drawn on it. `frame` is the size the boxes were
    measured in (the server's width and height), scaled onto the image if they differ. The `selected` label's
    box is drawn thicker."""
    out = image.convertToFormat(QImage.Format.Format_RGB32)
    if not labels:
        return out
    sx = out.width() / frame.width() if frame and frame.width() else 1.0
    sy = out.height() / frame.height() if frame and frame.height() else 1.0
    # Lines and text in proportion to the photo, so they read the same on a 250 px crop and a 4000 px photo.
    line = max(2, round(max(out.width(), out.height()) / 300))
    font = QFont()
    font.setPixelSize(max(12, round(max(out.width(), out.height()) / 40)))
    font.setBold(True)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setFont(font)
    rects = [
        QRect(round(b.left * sx), round(b.top * sy), round(b.width * sx), round(b.height * sy))
        for b in (label.box for label in labels)
    ]
    # Boxes first, then the name tags on top, each placed clear of the tags already drawn.
    for n, (label, rect) in enumerate(zip(labels, rects, strict=True)):
        painter.setPen(QPen(KNOWN if label.known else UNKNOWN, 3 * line if n == selected else line))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
    pad = max(3, line)
    placed: list[QRect] = []
    for label, rect in zip(labels, rects, strict=True):
        if not label.text:
            continue
        # Measured by the painter itself: the image's font metrics can differ from the screen's.
        text = painter.boundingRect(QRect(), Qt.AlignmentFlag.AlignLeft, label.text)
        tag = _place(rect, QSize(text.width() + 2 * pad, text.height() + pad), placed, out.rect())
        placed.append(tag)
        painter.fillRect(tag, KNOWN if label.known else UNKNOWN)
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, label.text)
    painter.end()
    return out


def _place(box: QRect, size: QSize, placed: list[QRect], bounds: QRect) -> QRect:
    """Where a box's name tag goes: above it, else below it, else inside its top edge, the first spot that
    stays on the image and overlaps no other tag (faces side by side have tags side by side)."""
    spots = [box.top() - size.height(), box.bottom() + 1, box.top()]
    candidates = []
    for top in spots:
        left = min(max(bounds.left(), box.left()), max(bounds.left(), bounds.right() + 1 - size.width()))
        tag = QRect(left, top, size.width(), size.height())
        if bounds.contains(tag):
            candidates.append(tag)
    for tag in candidates:
        if not any(tag.intersects(other) for other in placed):
            return tag
    return candidates[0] if candidates else QRect(box.topLeft(), size)


class PhotoView(QWidget):
    """Shows one image scaled to fit, keeping its aspect ratio; a hint when there is none. A click on the
    image is reported in the image's own pixels."""

    clicked = Signal(QPointF)

    def __init__(self, hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._hint = hint
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def image(self) -> QImage:
        return self._image

    def set_image(self, image: QImage) -> None:
        self._image = image
        self.update()

    def clear(self) -> None:
        self.set_image(QImage())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(self.backgroundRole()).darker(108))
        if self._image.isNull():
            painter.setPen(self.palette().color(self.foregroundRole()))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._hint)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(self.image_rect(), self._image)

    def image_rect(self) -> QRect:
        """Where the image is drawn in this widget."""
        size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(self.rect().center())
        return target

    def mousePressEvent(self, event: QMouseEvent) -> None:
        target = self.image_rect()
        if self._image.isNull() or not target.contains(event.position().toPoint()):
            return super().mousePressEvent(event)
        scale = self._image.width() / target.width()
        self.clicked.emit((event.position() - QPointF(target.topLeft())) * scale)
