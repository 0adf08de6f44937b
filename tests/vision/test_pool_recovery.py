"""A worker that dies takes the executor down; the pool must come back for the next request."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from facegate.config import OpenCVEngineSettings
from facegate.errors import Unavailable
from facegate.vision import pool as pool_module
from facegate.vision.pool import EnginePool


def test_pool_restarts_after_a_worker_is_killed(dev: Path) -> None:
    pool = EnginePool(OpenCVEngineSettings(), workers=1)
    pool.open()
    try:
        photo = (dev / "barack_obama" / "1.jpg").read_bytes()
        pid = pool._executor.submit(pool_module._worker_pid).result()  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(Unavailable) as excinfo:
            pool.analyze(photo, max_pixels=40_000_000, max_faces=1, crops=False)
        assert excinfo.value.code == "engine_restarted"
        # The next request is served by a fresh worker.
        assert len(pool.analyze(photo, max_pixels=40_000_000, max_faces=1, crops=False).faces) == 1
        assert pool.ready()
    finally:
        pool.close()
