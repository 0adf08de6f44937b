"""Runs the engine in worker processes: the descriptor does not get faster with threads, and the
event loop (or a request thread) must never spend CPU on it."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor

from facegate.config import EngineSettings
from facegate.errors import Unavailable
from facegate.vision.analysis import ImageAnalysis, analyze
from facegate.vision.engine import EngineInfo, FaceEngine
from facegate.vision.factory import build_engine

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
        if self._executor is None:
            raise Unavailable("The face engine is not started.", code="engine_unavailable")
        # A lone request may use every core (OpenCV splits its layers over threads: lower latency); under
        # load each task gets its share, since one thread per process gives the best throughput.
        with self._inflight_lock:
            self._inflight += 1
            threads = max(1, self._cores // self._inflight)
        future = self._executor.submit(
            _analyze, data, max_pixels, max_faces, crops, self._settings.max_detect_side, threads
        )
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[ImageAnalysis]) -> None:
        with self._inflight_lock:
            self._inflight -= 1

    def analyze(self, data: bytes, *, max_pixels: int, max_faces: int, crops: bool) -> ImageAnalysis:
        return self.submit(data, max_pixels=max_pixels, max_faces=max_faces, crops=crops).result()

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
