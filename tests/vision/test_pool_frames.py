"""vision.pool: decoded video frames analysed in the workers, without an image encoding in between."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facegate.vision.engine import Box
from facegate.vision.pool import EnginePool

LIMIT = 40_000_000


def test_a_frame_gives_what_its_lossless_encoding_gives(opencv_pool: EnginePool, dev: Path) -> None:
    path = dev / "lin_manuel_miranda" / "1.png"  # PNG: decoding gives back exactly these pixels
    frame = cv2.imread(str(path))
    from_bytes = opencv_pool.analyze(path.read_bytes(), max_pixels=LIMIT, max_faces=5, crops=True)
    from_frame = opencv_pool.wait(opencv_pool.submit_frame(frame, max_faces=5, crops=True))
    assert from_frame.boxes == from_bytes.boxes
    assert (from_frame.width, from_frame.height) == (frame.shape[1], frame.shape[0])
    assert len(from_frame.faces) == len(from_bytes.faces) >= 1
    for a, b in zip(from_frame.faces, from_bytes.faces, strict=True):
        assert a.box == b.box
        np.testing.assert_allclose(a.embedding, b.embedding, rtol=1e-5, atol=1e-6)
        assert a.crop_jpeg


def test_skipped_and_small_faces_are_detected_but_not_embedded(opencv_pool: EnginePool, dev: Path) -> None:
    frame = cv2.imread(str(dev / "multi" / "selfie-many-people.jpg"))
    every = opencv_pool.wait(opencv_pool.submit_frame(frame, max_faces=20, crops=False))
    assert len(every.faces) == len(every.boxes) >= 4

    # A box to skip, slightly off (a track's predicted position), still covers its face.
    first = every.boxes[0]
    near = Box(first.left + 3, first.top - 2, first.width, first.height)
    skipped = opencv_pool.wait(opencv_pool.submit_frame(frame, max_faces=20, crops=False, skip=[near]))
    assert skipped.boxes == every.boxes
    assert [f.box for f in skipped.faces] == [f.box for f in every.faces[1:]]

    smallest = min(min(b.width, b.height) for b in every.boxes)
    largest = max(min(b.width, b.height) for b in every.boxes)
    big_only = opencv_pool.wait(opencv_pool.submit_frame(frame, max_faces=20, crops=False, min_face_size=largest))
    assert len(big_only.boxes) == len(every.boxes)
    assert 1 <= len(big_only.faces) < len(every.faces) or smallest == largest
