"""Runs the engine in worker processes: the descriptor does not get faster with threads, and the
event loop (or a request thread) must never spend CPU on it.

What keeps the pool usable under load and attack:
- Admission: at most `limits.engine_queue` tasks are queued or running. Beyond that a new request is refused
  at once (`EngineBusy`, 503 with a retry hint) instead of waiting behind everyone else; a request already
  admitted (the same thread still has tasks in flight: an enroll's 20 photos, a compare's two) waits for
  a slot, so admitted work is finished whole. Batch jobs (`when_full="wait"`) always wait.
- Timeouts: a result not ready `limits.engine_timeout_seconds` after submission is reported as
  `engine_timeout`; its slot is released when the task really ends, so the bound stays true.
- A photo whose task killed its worker (a native crash, the OOM killer) is remembered by SHA-256 and refused
  from then on without running it, so it restarts the pool once, not every time it is sent.
- Workers die with the process that started them, even when that one is killed with SIGKILL.
- `ready()` never queues behind real work.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Literal, TypeVar

from facegate.config import EngineSettings, FusionEngineSettings, LimitSettings
from facegate.errors import FacegateError, Unavailable, UnsupportedImage
from facegate.vision.analysis import ImageAnalysis, Secondary, analyze, analyze_image
from facegate.vision.engine import BGRImage, Box, Embedding, EngineInfo, FaceEngine, FusedFaceEngine
from facegate.vision.factory import build_engine
from facegate.vision.images import check_decodable

log = logging.getLogger(__name__)

WhenFull = Literal["refuse", "wait"]
T = TypeVar("T")

# Photos that crashed a worker, remembered per process (most recent last).
CRASHED_MEMORY = 1000
# Loading the models takes a few seconds; far longer means a worker cannot start.
STARTUP_SECONDS = 120.0
# The readiness ping runs only on an idle pool, where it is answered in milliseconds.
PING_SECONDS = 5.0
_DIGEST = 32  # bytes of a SHA-256
_NO_TASK = bytes(_DIGEST)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# A video face overlapping a box to skip at least this much (IoU) is that track's face.
FRAME_SKIP_IOU = 0.3


class EngineBusy(Unavailable):
    """Every engine slot is taken: refused at once rather than queued. HTTP: 503 with a Retry-After of
    `retry_after_seconds` (about how long the work already admitted takes to drain)."""

    code = "engine_busy"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


# --- In the worker processes ---


class _SlotTable:
    """Which photo each worker is analysing, in memory shared with the workers. When a worker dies, the
    photo it was working on is read here: nothing has to come from the dying process."""

    def __init__(self, ctx: SpawnContext, workers: int) -> None:
        self.size = workers
        self.pids = ctx.RawArray(ctypes.c_int64, workers)
        self.digests = ctx.RawArray(ctypes.c_ubyte, workers * _DIGEST)
        self.claimed = ctx.Value(ctypes.c_int, 0)  # workers started (models loaded) so far

    def claim(self, pid: int) -> int:
        with self.claimed.get_lock():
            index: int = self.claimed.value
            self.claimed.value += 1
        if index < self.size:
            self.pids[index] = pid
        return index

    def mark(self, index: int, digest: bytes) -> None:
        if 0 <= index < self.size:
            self.digests[index * _DIGEST : (index + 1) * _DIGEST] = list(digest)

    def running(self) -> dict[int, bytes]:
        """Worker pid -> digest of the photo it is analysing now."""
        result = {}
        for index in range(min(self.claimed.value, self.size)):
            digest = bytes(self.digests[index * _DIGEST : (index + 1) * _DIGEST])
            if digest != _NO_TASK:
                result[int(self.pids[index])] = digest
        return result


@dataclass
class _Worker:
    engine: FaceEngine
    slots: _SlotTable
    index: int


# One engine per worker process, set by the pool initializer. A process-local slot is the only way
# ProcessPoolExecutor hands state to its tasks; the parent process never touches it.
_worker: _Worker | None = None


def _init_worker(settings: EngineSettings, slots: _SlotTable, parent_pid: int) -> None:
    global _worker
    _die_with_parent(parent_pid)
    # Each worker is one core's worth of work; keep OpenCV from spawning threads that fight each other.
    import cv2

    cv2.setNumThreads(1)
    engine = build_engine(settings)
    engine.open()
    _worker = _Worker(engine, slots, slots.claim(os.getpid()))


def _die_with_parent(parent_pid: int, *, pdeathsig: bool = True, poll_seconds: float = 1.0) -> None:
    """Exit when the process that started this worker dies, even by SIGKILL (which runs no clean-up):
    orphaned workers (~300 MB each) would otherwise live on under PID 1, a new set after every restart.

    Linux: the kernel sends SIGKILL the moment the parent goes (PR_SET_PDEATHSIG). Everywhere, and as a
    fallback: a thread that exits once the parent pid changes (the orphan was re-parented)."""
    if pdeathsig and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    watchdog = threading.Thread(
        target=_exit_when_orphaned, args=(parent_pid, poll_seconds), name="facegate-parent-watchdog", daemon=True
    )
    watchdog.start()


def _exit_when_orphaned(parent_pid: int, poll_seconds: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)


def _worker_pid() -> int:
    return os.getpid()


def _await_workers(count: int, timeout: float) -> int:
    """A start-up task: holds its worker until `count` workers have loaded their models, so that the pool
    starts every process now (and from the thread that owns them) rather than on demand."""
    assert _worker is not None
    deadline = time.monotonic() + timeout
    while _worker.slots.claimed.value < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def _analyze(
    data: bytes,
    digest: bytes,
    max_pixels: int,
    max_faces: int,
    crops: bool,
    decode_side: int,
    max_decoded_pixels: int,
    secondary: Secondary,
    threads: int,
) -> ImageAnalysis:
    worker = _worker
    if worker is None:  # pragma: no cover - the initializer always runs first
        raise Unavailable("Engine worker was not initialised.")
    import cv2

    cv2.setNumThreads(threads)
    worker.slots.mark(worker.index, digest)
    try:
        return analyze(
            worker.engine,
            data,
            max_pixels=max_pixels,
            max_faces=max_faces,
            crops=crops,
            decode_side=decode_side,
            max_decoded_pixels=max_decoded_pixels,
            secondary=secondary,
        )
    finally:
        worker.slots.mark(worker.index, _NO_TASK)


def _analyze_frame(
    frame: BGRImage,
    digest: bytes,
    max_faces: int,
    crops: bool,
    secondary: Secondary,
    skip: list[Box],
    min_face_size: int,
    threads: int,
) -> ImageAnalysis:
    """A decoded video frame (no JPEG round trip). Faces smaller than `min_face_size` or overlapping a box in
    `skip` (tracks that need no embedding now) are detected but not embedded."""
    worker = _worker
    if worker is None:  # pragma: no cover - the initializer always runs first
        raise Unavailable("Engine worker was not initialised.")
    import cv2

    cv2.setNumThreads(threads)
    worker.slots.mark(worker.index, digest)

    def wanted(box: Box) -> bool:
        return min(box.width, box.height) >= min_face_size and all(box.iou(other) < FRAME_SKIP_IOU for other in skip)

    try:
        height, width = frame.shape[:2]
        return analyze_image(
            worker.engine,
            frame,
            width=width,
            height=height,
            max_faces=max_faces,
            crops=crops,
            secondary=secondary,
            select=wanted,
        )
    finally:
        worker.slots.mark(worker.index, _NO_TASK)


def _embed_secondary(prepared: list[BGRImage], digest: bytes, threads: int) -> list[Embedding]:
    worker = _worker
    if worker is None or not isinstance(worker.engine, FusedFaceEngine):  # pragma: no cover - guarded by the pool
        raise Unavailable("This engine has no second descriptor.")
    import cv2

    cv2.setNumThreads(threads)
    worker.slots.mark(worker.index, digest)
    try:
        return [worker.engine.embed_secondary(chip) for chip in prepared]
    finally:
        worker.slots.mark(worker.index, _NO_TASK)


# --- In the service process ---


class _Generation:
    """One executor and its worker processes, started from a thread of their own that lives until they are
    shut down: Linux sends PR_SET_PDEATHSIG when the *thread* that started a process ends, so a worker
    started from a request thread would be killed when that thread retires."""

    def __init__(self, settings: EngineSettings, workers: int) -> None:
        self.workers = workers
        ctx = multiprocessing.get_context("spawn")
        self.slots = _SlotTable(ctx, workers)
        self._stop = threading.Event()
        started: Future[ProcessPoolExecutor] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(ctx, settings, started), name="facegate-engine-workers", daemon=True
        )
        self._thread.start()
        self.executor = started.result()

    def _run(self, ctx: SpawnContext, settings: EngineSettings, started: Future[ProcessPoolExecutor]) -> None:
        executor: ProcessPoolExecutor | None = None
        try:
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(settings, self.slots, os.getpid()),
            )
            # The processes are spawned by these submits. Each re-runs the parent's main module (multiprocessing
            # does, in case a task lives there; ours never do): for the `facegate` command that is a wrapper that
            # costs nothing (facegate/__main__.py).
            waits = [executor.submit(_await_workers, self.workers, STARTUP_SECONDS) for _ in range(self.workers)]
            for future in waits:
                future.result(timeout=STARTUP_SECONDS + 10)
            if self.slots.claimed.value < self.workers:
                raise TimeoutError(f"{self.slots.claimed.value} of {self.workers} workers started")
        except Exception as exc:  # a model that does not load, a worker that dies while starting
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            started.set_exception(Unavailable(f"The face engine did not start: {exc}", code="engine_unavailable"))
            return
        started.set_result(executor)
        self._stop.wait()

    @property
    def broken(self) -> bool:
        return bool(getattr(self.executor, "_broken", False))

    def processes(self) -> dict[int, BaseProcess]:
        # ProcessPoolExecutor keeps its processes (pid -> Process) in `_processes` (since 3.2; set to None
        # by shutdown). Only Process objects tell a live worker from a dead, not yet reaped one.
        processes: dict[int, BaseProcess] | None = getattr(self.executor, "_processes", None)
        return dict(processes or {})

    def alive(self) -> bool:
        processes = self.processes()
        return len(processes) == self.workers and all(p.is_alive() for p in processes.values())

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        self._thread.join()

    def close_broken(self) -> set[bytes]:
        """Shut a broken executor down; returns the digests of the photos whose workers crashed.

        When one worker dies, the executor terminates the others (SIGTERM): a photo is blamed only when its
        worker died of something else (a native crash, SIGKILL), never for being in flight at the time."""
        processes = self.processes()  # shutdown drops them
        running = self.slots.running()
        self.close()  # joins every worker: their exit codes are known below
        culprits = set()
        for pid, digest in running.items():
            process = processes.get(pid)
            code = process.exitcode if process is not None else None
            if code is not None and code != -signal.SIGTERM:
                log.error("engine worker %d died (exit code %s) analysing image sha256=%s", pid, code, digest.hex())
                culprits.add(digest)
        return culprits


@dataclass
class _Task:
    digest: bytes
    submitted: float
    deadline: float
    # The submitting thread while its request still waits for this task (None once it has given up).
    thread: int | None


class EnginePool:
    """`limits` (default: LimitSettings()) bounds the work in flight, the wait for a result and the decoded
    image size. `when_full`: "refuse" new requests at once when every slot is taken (a service answering
    clients), or "wait" for a slot (batch commands)."""

    def __init__(
        self,
        settings: EngineSettings,
        workers: int,
        *,
        limits: LimitSettings | None = None,
        when_full: WhenFull = "refuse",
    ) -> None:
        self._settings = settings
        self._workers = workers
        self._limits = limits or LimitSettings()
        self.when_full: WhenFull = when_full
        self.info: EngineInfo = build_engine(settings).info
        self._cores = os.cpu_count() or 1
        self._generation: _Generation | None = None
        self._opened = False
        self._restart_lock = threading.Lock()
        # Admission: tasks in flight, per submitting thread too, and how fast they have been coming back.
        self._admission = threading.Condition()
        self._inflight = 0
        self._held: dict[int, int] = {}
        self._progress_at = time.monotonic()
        self._latency = 1.0  # seconds from submission to result, moving average
        self._tasks: weakref.WeakKeyDictionary[Future[Any], _Task] = weakref.WeakKeyDictionary()
        self._crashed: OrderedDict[bytes, None] = OrderedDict()
        self._crashed_lock = threading.Lock()

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def inflight(self) -> int:
        """Tasks queued or running now (a timed-out task counts until it really ends)."""
        with self._admission:
            return self._inflight

    @property
    def queue_limit(self) -> int:
        """Tasks that may be queued or running at once: by default 4 per worker, and at least 8 so that a
        one-core deployment still takes a small burst (a compare's two photos, an enroll of a few)."""
        return self._limits.engine_queue or max(8, 4 * self._workers)

    def open(self) -> None:
        with self._restart_lock:
            if self._generation is None:
                self._generation = _Generation(self._settings, self._workers)
            self._opened = True

    def close(self) -> None:
        with self._restart_lock:
            generation, self._generation = self._generation, None
            self._opened = False
        if generation is not None:
            generation.close()

    # --- Work ---

    def submit(
        self, data: bytes, *, max_pixels: int, max_faces: int, crops: bool, secondary: Secondary = "none"
    ) -> Future[ImageAnalysis]:
        """Queue one image. Raises what the image's header already rules out (PayloadTooLarge,
        UnsupportedImage: before it takes an engine slot, so a busy engine never turns a 413 into a 503),
        EngineBusy when every slot is taken (see the module doc), UnsupportedImage (image_crashed_engine) for a
        photo that crashed a worker before, Unavailable when not started."""
        settings = self._settings
        detect_side = (settings.opencv if isinstance(settings, FusionEngineSettings) else settings).max_detect_side
        check_decodable(data, max_pixels, min_side=detect_side, max_decoded_pixels=self._limits.max_decoded_pixels)
        digest = hashlib.sha256(data).digest()
        return self._submit(
            _analyze,
            digest,
            data,
            digest,
            max_pixels,
            max_faces,
            crops,
            detect_side,
            self._limits.max_decoded_pixels,
            secondary,
        )

    def submit_frame(
        self,
        frame: BGRImage,
        *,
        max_faces: int,
        crops: bool,
        secondary: Secondary = "none",
        skip: list[Box] | None = None,
        min_face_size: int = 0,
    ) -> Future[ImageAnalysis]:
        """Queue one decoded video frame (see `_analyze_frame`); admitted like a photo."""
        # A sample of the pixels identifies a frame well enough for the crash memory at a fraction of the cost.
        digest = hashlib.sha256(frame[::8, ::8].tobytes()).digest()
        return self._submit(
            _analyze_frame, digest, frame, digest, max_faces, crops, secondary, list(skip or []), min_face_size
        )

    def embed_secondary(self, prepared: list[BGRImage]) -> list[Embedding]:
        """The fused engine's second descriptors of faces analysed with secondary="input", as one task."""
        if self.info.secondary is None:
            raise Unavailable(f"The {self.info.label} engine has no second descriptor.")
        digest = hashlib.sha256(b"".join(chip.tobytes() for chip in prepared)).digest()
        return self.wait(self._submit(_embed_secondary, digest, prepared, digest))

    def _submit(self, fn: Callable[..., T], digest: bytes, *args: Any) -> Future[T]:
        """Run `fn(*args, threads)` in a worker, admitted and tracked like every task."""
        with self._crashed_lock:
            crashed = digest in self._crashed
        if crashed:
            raise UnsupportedImage(
                "This image crashed the face engine before; it is refused without being analysed.",
                code="image_crashed_engine",
            )
        generation = self._live_generation()
        thread = threading.get_ident()
        threads = self._admit(thread)
        now = time.monotonic()
        task = _Task(digest, now, now + self._limits.engine_timeout_seconds, thread)
        try:
            try:
                future = generation.executor.submit(fn, *args, threads)
            except BrokenProcessPool:  # broke since the check above: once more on a fresh one
                future = self._restarted().executor.submit(fn, *args, threads)
        except BaseException:
            self._release(task, None)
            raise
        with self._admission:
            self._tasks[future] = task
        future.add_done_callback(lambda done: self._release(task, done))
        return future

    def wait(self, future: Future[T]) -> T:
        """The result of a submitted task, within the engine timeout counted from its submission.

        A worker that died (e.g. a native crash on a hostile file) breaks the whole executor: a fresh one is
        started so later requests work. The photo that killed it gets UnsupportedImage (and is refused from
        now on); the others in flight at the time, Unavailable (engine_restarted): retrying them is fine."""
        with self._admission:
            task = self._tasks.get(future)
        deadline = task.deadline if task else time.monotonic() + self._limits.engine_timeout_seconds
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if future.done():
                raise  # the task itself raised it
            future.cancel()  # not started yet: it never will. Running: its slot frees when it ends.
            if task is not None:
                self._detach(task)
            raise Unavailable(
                f"The face engine gave no result within {self._limits.engine_timeout_seconds:g} s; retry later.",
                code="engine_timeout",
            ) from None
        except BrokenProcessPool as exc:
            self._restart()
            if task is not None and self.has_crashed(task.digest):
                raise UnsupportedImage(
                    "This image crashed the face engine; it will be refused from now on.",
                    code="image_crashed_engine",
                ) from exc
            raise Unavailable("The face engine restarted; retry the request.", code="engine_restarted") from exc

    def analyze(
        self, data: bytes, *, max_pixels: int, max_faces: int, crops: bool, secondary: Secondary = "none"
    ) -> ImageAnalysis:
        return self.wait(
            self.submit(data, max_pixels=max_pixels, max_faces=max_faces, crops=crops, secondary=secondary)
        )

    def has_crashed(self, digest: bytes) -> bool:
        with self._crashed_lock:
            return digest in self._crashed

    # --- Admission ---

    def _admit(self, thread: int) -> int:
        """Take a slot for the calling thread; returns the OpenCV threads its task may use."""
        limit = self.queue_limit
        with self._admission:
            if self._inflight >= limit:
                if self.when_full == "refuse" and not self._held.get(thread):
                    retry = min(math.ceil(self._latency), math.ceil(self._limits.engine_timeout_seconds))
                    raise EngineBusy(
                        f"The face engine is busy ({self._inflight} images queued or in progress); "
                        f"retry in {max(1, retry)} s.",
                        retry_after_seconds=max(1, retry),
                    )
                deadline = time.monotonic() + self._limits.engine_timeout_seconds
                while self._inflight >= limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Unavailable(
                            "The face engine freed no slot within "
                            f"{self._limits.engine_timeout_seconds:g} s; retry later.",
                            code="engine_timeout",
                        )
                    self._admission.wait(remaining)
            if self._inflight == 0:
                self._progress_at = time.monotonic()
            self._inflight += 1
            self._held[thread] = self._held.get(thread, 0) + 1
            # A lone request may use every core (OpenCV splits its layers over threads: lower latency);
            # under load each task gets its share, since one thread per process gives the best throughput.
            return max(1, self._cores // self._inflight)

    def _release(self, task: _Task, future: Future[Any] | None) -> None:
        now = time.monotonic()
        with self._admission:
            self._inflight -= 1
            self._detach_locked(task)
            if future is not None and not future.cancelled():  # a task really ended: the engine moves
                self._progress_at = now
                self._latency = 0.8 * self._latency + 0.2 * (now - task.submitted)
            self._admission.notify()

    def _detach(self, task: _Task) -> None:
        with self._admission:
            self._detach_locked(task)

    def _detach_locked(self, task: _Task) -> None:
        """The task no longer belongs to a waiting request: its thread's next request is a new one (its slot
        stays taken until the task ends)."""
        if task.thread is None:
            return
        held = self._held.get(task.thread, 0) - 1
        if held > 0:
            self._held[task.thread] = held
        else:
            self._held.pop(task.thread, None)
        task.thread = None

    # --- Health and recovery ---

    def _live_generation(self) -> _Generation:
        generation = self._generation
        if generation is None or generation.broken:
            if not self._opened:
                raise Unavailable("The face engine is not started.", code="engine_unavailable")
            return self._restarted()
        return generation

    def _restarted(self) -> _Generation:
        self._restart()
        generation = self._generation
        if generation is None:
            raise Unavailable("The face engine is not running.", code="engine_unavailable")
        return generation

    def _restart(self) -> None:
        """Replace a broken executor (or start one again after a failed restart), once across threads."""
        with self._restart_lock:
            broken = self._generation
            if not self._opened or (broken is not None and not broken.broken):
                return  # closed, or another thread already restarted it
            self._generation = None
            if broken is not None:
                log.error("an engine worker died; restarting the pool")
                for digest in broken.close_broken():
                    self._remember_crash(digest)
            self._generation = _Generation(self._settings, self._workers)

    def _remember_crash(self, digest: bytes) -> None:
        with self._crashed_lock:
            self._crashed[digest] = None
            self._crashed.move_to_end(digest)
            while len(self._crashed) > CRASHED_MEMORY:
                self._crashed.popitem(last=False)

    def worker_pids(self) -> list[int]:
        generation = self._generation
        return sorted(generation.processes()) if generation is not None else []

    def busy_workers(self) -> dict[int, str]:
        """Worker pid -> SHA-256 (hex) of the photo it is analysing right now."""
        generation = self._generation
        if generation is None:
            return {}
        return {pid: digest.hex() for pid, digest in generation.slots.running().items()}

    def ready(self) -> bool:
        """Usable now, answered without queueing behind real work: the executor is not broken and every
        worker process is alive. A busy pool is ready while tasks keep finishing; an idle one answers a
        ping. A broken pool is restarted here too, since a replica marked unready gets no request that
        would restart it."""
        generation = self._generation
        if generation is None or generation.broken:
            if generation is None and not self._opened:
                return False
            try:
                generation = self._restarted()
            except FacegateError:
                return False
        if not generation.alive():
            return False
        with self._admission:
            busy, progress_at = self._inflight > 0, self._progress_at
        if busy:
            # Wedged: busy for a whole timeout without one task finishing.
            return time.monotonic() - progress_at < self._limits.engine_timeout_seconds
        try:
            generation.executor.submit(_worker_pid).result(timeout=PING_SECONDS)
        except Exception:
            return False
        return True
