"""vision.pool: the engine runs in worker processes; errors come back with their class and code."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from facegate.config import OpenCVEngineSettings
from facegate.errors import PayloadTooLarge, Unavailable, UnsupportedImage
from facegate.vision.analysis import ImageAnalysis
from facegate.vision.pool import EnginePool
from tests.support import png_declaring, truncated

LIMIT = 40_000_000


def test_analyze_in_a_worker(opencv_pool: EnginePool, dev: Path) -> None:
    data = (dev / "colin_powell" / "1.jpg").read_bytes()
    analysis = opencv_pool.analyze(data, max_pixels=LIMIT, max_faces=3, crops=True)
    assert isinstance(analysis, ImageAnalysis)
    assert len(analysis.faces) == 1
    assert analysis.faces[0].crop_jpeg


def test_concurrent_submissions_all_complete(opencv_pool: EnginePool, dev: Path) -> None:
    photos = [dev / "colin_powell" / f"{n}.jpg" for n in range(1, 7)]
    futures: list[Future[ImageAnalysis]] = [
        opencv_pool.submit(p.read_bytes(), max_pixels=LIMIT, max_faces=1, crops=False) for p in photos
    ]
    assert all(len(f.result(timeout=60).faces) == 1 for f in futures)


def test_errors_cross_the_process_boundary_with_their_code(opencv_pool: EnginePool, dev: Path) -> None:
    with pytest.raises(UnsupportedImage) as unreadable:
        opencv_pool.analyze(truncated(dev / "colin_powell" / "1.jpg"), max_pixels=LIMIT, max_faces=1, crops=False)
    assert unreadable.value.code == "unreadable_image"
    assert "truncated" in unreadable.value.message

    with pytest.raises(PayloadTooLarge) as too_large:
        opencv_pool.analyze(png_declaring(9000, 9000), max_pixels=LIMIT, max_faces=1, crops=False)
    assert too_large.value.code == "image_too_large"

    assert opencv_pool.ready()  # a failed task does not break the pool


def test_pool_reports_its_engine_and_size(opencv_pool: EnginePool) -> None:
    assert opencv_pool.info.name == "opencv"
    assert opencv_pool.workers == 2
    assert opencv_pool.ready()


def test_unopened_pool_is_not_ready_and_refuses_work(dev: Path) -> None:
    pool = EnginePool(OpenCVEngineSettings(), workers=1)  # no process is started by the constructor
    assert not pool.ready()
    with pytest.raises(Unavailable) as raised:
        pool.submit((dev / "colin_powell" / "1.jpg").read_bytes(), max_pixels=LIMIT, max_faces=1, crops=False)
    assert raised.value.code == "engine_unavailable"
    pool.close()  # closing a pool that never opened is harmless


def test_an_image_its_header_rules_out_is_refused_before_it_takes_a_slot() -> None:
    # An unopened pool would answer Unavailable to anything it queued: the refusal comes first, from the header.
    pool = EnginePool(OpenCVEngineSettings(), workers=1)
    with pytest.raises(UnsupportedImage):
        pool.submit(b"not an image", max_pixels=LIMIT, max_faces=1, crops=False)
    assert pool.inflight == 0
