"""A worker that dies takes the executor down; the pool must come back, and a photo that killed its worker
must not be able to do it again."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from facegate.config import OpenCVEngineSettings
from facegate.errors import Unavailable, UnsupportedImage
from facegate.vision.pool import EnginePool

KW: dict[str, Any] = {"max_pixels": 40_000_000, "max_faces": 1, "crops": False}


def _gone(pid: int, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while _running(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.01)


def _running(pid: int) -> bool:
    """Alive and not a zombie. A process reaped between two looks at /proc is gone too (ESRCH/ENOENT)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_pool_restarts_after_an_idle_worker_is_killed(dev: Path) -> None:
    pool = EnginePool(OpenCVEngineSettings(), workers=1)
    pool.open()
    try:
        photo = (dev / "barack_obama" / "1.jpg").read_bytes()
        [pid] = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        _gone(pid)
        # A replica that reports unready gets no request that would restart its engine: ready() restarts it
        # (once the executor has noticed the death; until then it answers False, as a balancer polls on).
        deadline = time.monotonic() + 30
        while not pool.ready():
            assert time.monotonic() < deadline, "the pool never became ready again"
            time.sleep(0.05)
        assert pool.worker_pids() != [pid]
        assert len(pool.analyze(photo, **KW).faces) == 1
    finally:
        pool.close()


def test_a_photo_whose_task_kills_its_worker_is_refused_from_then_on(dev: Path) -> None:
    # Detection on the full 4352 x 2903 photo keeps its task running long enough to be caught in the act.
    pool = EnginePool(OpenCVEngineSettings(max_detect_side=4400), workers=1)
    pool.open()
    try:
        culprit = (dev / "deepface_person_03" / "5.jpg").read_bytes()
        innocent = (dev / "colin_powell" / "1.jpg").read_bytes()
        crashing = pool.submit(culprit, **KW)
        queued = pool.submit(innocent, **KW)  # in flight too when the worker dies
        digest = hashlib.sha256(culprit).hexdigest()
        deadline = time.monotonic() + 30
        while (pid := next((p for p, d in pool.busy_workers().items() if d == digest), None)) is None:
            assert time.monotonic() < deadline, "the photo never started"
            time.sleep(0.001)
        os.kill(pid, signal.SIGKILL)  # as a native crash in the decoder or the model would

        with pytest.raises(UnsupportedImage) as crashed:
            pool.wait(crashing)
        assert crashed.value.code == "image_crashed_engine"  # 415: retrying it would not help
        with pytest.raises(Unavailable) as restarted:
            pool.wait(queued)
        assert restarted.value.code == "engine_restarted"  # 503: retry
        workers = pool.worker_pids()
        assert pid not in workers

        # Sent again, it is refused without running: the pool is not restarted a second time.
        with pytest.raises(UnsupportedImage) as refused:
            pool.submit(culprit, **KW)
        assert refused.value.code == "image_crashed_engine"
        assert pool.worker_pids() == workers
        # The photo that was merely in flight at the time is not blamed.
        assert len(pool.analyze(innocent, **KW).faces) == 1
        assert pool.ready()
    finally:
        pool.close()
