"""Runs the engine in worker processes: the descriptor does not get faster with threads, and the
event loop (or a request thread) must never spend CPU on it."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from facegate.config import EngineSettings
from facegate.errors import Unavailable
from facegate.vision.analysis import ImageAnalysis, analyze
from facegate.vision.engine import EngineInfo, FaceEngine
from facegate.vision.factory import build_engine

log = logging.getLogger(__name__)

# One engine per worker process, set by the pool initializer. A process-local slot is the only way
# ProcessPoolExecutor hands state to its tasks; the parent process never touches it.
_worker_engine: FaceEngine | None = None


def _init_worker(settings: EngineSettings) -> None:
    global _worker_engine
    # Each worker is one core's worth of work; keep OpenCV from spawning threads that fight each other.
    import cv2

    cv2.setNumThreads(1)
    engine = build_engine(settings)
    engine.open()
    _worker_engine = engine


def _worker_pid() -> int:
    return os.getpid()


def _analyze(
    data: bytes, max_pixels: int, max_faces: int, crops: bool, decode_side: int, threads: int
) -> ImageAnalysis:
    if _worker_engine is None:  # pragma: no cover - the initializer always runs first
        raise Unavailable("Engine worker was not initialised.")
    import cv2

    cv2.setNumThreads(threads)
    return analyze(
        _worker_engine, data, max_pixels=max_pixels, max_faces=max_faces, crops=crops, decode_side=decode_side
    )


class EnginePool:
    def __init__(self, settings: EngineSettings, workers: int) -> None:
        self._settings = settings
        self._workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self.info: EngineInfo = build_engine(settings).info
        self._cores = os.cpu_count() or 1
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._restart_lock = threading.Lock()

    def open(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            max_workers=self._workers, mp_context=ctx, initializer=_init_worker, initargs=(self._settings,)
        )
        # Start every worker now (models load in the initializer) so the first request is not slow.
        pids = {f.result() for f in [self._executor.submit(_worker_pid) for _ in range(self._workers * 2)]}
        if not pids:
            raise Unavailable("No engine worker started.")

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, data: bytes, *, max_pixels: int, max_faces: int, crops: bool) -> Future[ImageAnalysis]:
        executor = self._executor
        if executor is None:
            raise Unavailable("The face engine is not started.", code="engine_unavailable")
        if getattr(executor, "_broken", False):
            self._restart()
            executor = self._executor
            assert executor is not None
        # A lone request may use every core (OpenCV splits its layers over threads: lower latency); under
        # load each task gets its share, since one thread per process gives the best throughput.
        with self._inflight_lock:
            self._inflight += 1
            threads = max(1, self._cores // self._inflight)
        try:
            future = executor.submit(
                _analyze, data, max_pixels, max_faces, crops, self._settings.max_detect_side, threads
            )
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[ImageAnalysis] | None) -> None:
        with self._inflight_lock:
            self._inflight -= 1

    def wait(self, future: Future[ImageAnalysis]) -> ImageAnalysis:
        """The result of a submitted task. A worker that died (e.g. a native crash on a hostile file) breaks
        the whole executor: start a fresh one so later requests work, and report this one as unavailable."""
        try:
            return future.result()
        except BrokenProcessPool as exc:
            log.error("an engine worker died; restarting the pool")
            self._restart()
            raise Unavailable("The face engine restarted; retry the request.", code="engine_restarted") from exc

    def analyze(self, data: bytes, *, max_pixels: int, max_faces: int, crops: bool) -> ImageAnalysis:
        return self.wait(self.submit(data, max_pixels=max_pixels, max_faces=max_faces, crops=crops))

    def _restart(self) -> None:
        with self._restart_lock:
            broken = self._executor
            if broken is None or not getattr(broken, "_broken", False):
                return  # another thread already restarted it
            self._executor = None
            broken.shutdown(wait=False, cancel_futures=True)
            self.open()

    def ready(self) -> bool:
        if self._executor is None:
            return False
        try:
            self._executor.submit(_worker_pid).result(timeout=10)
        except Exception:
            return False
        return True

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
