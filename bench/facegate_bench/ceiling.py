"""The bare engine: the service's own per-photo work with nothing around it, in `processes` single-threaded
processes. This is the ceiling identify over HTTP, and `facegate enroll`, are measured against.

The per-photo work is what a service pool worker does for identify: `facegate.vision.analysis.analyze` with
the service's limits and detection size and `secondary="input"`. For the fused engine it also includes
`embed_secondary` for each face the service fused. Those are the faces its answer marked `decided_by:
"fusion"`, taken from the HTTP run on the same probes. Crops are not encoded: the identify path keeps them for
match history, which is work the service adds around the models. Each worker reads its photo from disk.
The service receives its photo over HTTP instead.

The per-photo enroll work is what a pool worker does for enroll (`facegate.services.enroll._analyze`):
`analyze` with the same limits and detection size, `max_faces=1`, no crops and `secondary="embed"` (the fused
engine stores both descriptors of the enrolled face). The service's choice of the face, its database rows and
its copy of the photo are work around the models.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, TypeVar

from facegate.config import (
    DlibEngineSettings,
    EngineSettings,
    FusionEngineSettings,
    OpenCVEngineSettings,
    Settings,
)
from facegate.vision.analysis import analyze
from facegate.vision.engine import FaceEngine, FusedFaceEngine
from facegate.vision.factory import build_engine
from facegate_bench.split import Probe

T = TypeVar("T")


@dataclass(frozen=True)
class AnalyzeParams:
    max_pixels: int
    max_faces: int
    decode_side: int
    max_decoded_pixels: int


def engine_settings(engine: str) -> tuple[EngineSettings, AnalyzeParams]:
    """The engine's settings as `facegate serve` would build them (FACEGATE_* variables apply, the engine type is
    overridden), and the parameters its identify passes to `analyze`."""
    settings = Settings()
    kinds: dict[str, type[EngineSettings]] = {
        "opencv": OpenCVEngineSettings,
        "dlib": DlibEngineSettings,
        "fusion": FusionEngineSettings,
    }
    if not isinstance(settings.engine, kinds[engine]):
        settings.engine = kinds[engine]()
    chosen = settings.engine
    detect = chosen.opencv if isinstance(chosen, FusionEngineSettings) else chosen
    params = AnalyzeParams(
        max_pixels=settings.limits.max_image_pixels,
        max_faces=settings.identify.max_faces,
        decode_side=detect.max_detect_side,
        max_decoded_pixels=settings.limits.max_decoded_pixels,
    )
    return chosen, params


# One engine per worker process, set by the initializer (the way ProcessPoolExecutor hands state to tasks).
_engine: FaceEngine | None = None
_params: AnalyzeParams | None = None
_started: Synchronized[int] | None = None


def _init(settings: EngineSettings, params: AnalyzeParams, started: Synchronized[int]) -> None:
    global _engine, _params, _started
    import cv2

    cv2.setNumThreads(1)
    engine = build_engine(settings)
    engine.open()
    _engine, _params, _started = engine, params, started
    with started.get_lock():
        started.value += 1


def _await_all(count: int) -> None:
    """Holds its worker until every worker has loaded its models, so that timing starts with all of them."""
    assert _started is not None
    while _started.value < count:
        time.sleep(0.01)


def identify_work(task: tuple[str, tuple[int, ...]]) -> tuple[int, int]:
    """One probe: the faces found and the second descriptors computed."""
    path, fused = task
    assert _engine is not None and _params is not None
    analysis = analyze(
        _engine,
        Path(path).read_bytes(),
        max_pixels=_params.max_pixels,
        max_faces=_params.max_faces,
        crops=False,
        decode_side=_params.decode_side,
        max_decoded_pixels=_params.max_decoded_pixels,
        secondary="input",
    )
    second = 0
    if isinstance(_engine, FusedFaceEngine):
        for i, face in enumerate(analysis.faces):
            if i in fused and face.secondary_input is not None:
                _engine.embed_secondary(face.secondary_input)
                second += 1
    return len(analysis.faces), second


def _enroll_work(path: str) -> tuple[int, int]:
    """One photo as enroll analyses it: (faces embedded, second descriptors computed)."""
    assert _engine is not None and _params is not None
    analysis = analyze(
        _engine,
        Path(path).read_bytes(),
        max_pixels=_params.max_pixels,
        max_faces=1,
        crops=False,
        decode_side=_params.decode_side,
        max_decoded_pixels=_params.max_decoded_pixels,
        secondary="embed",
    )
    return len(analysis.faces), sum(face.secondary is not None for face in analysis.faces)


@dataclass
class _BareRun:
    load_seconds: float
    pass_seconds: list[float]
    results: list[tuple[int, int]]  # the last pass's, per task: (faces, second descriptors)


class BarePool:
    """`processes` spawned processes with the engine's models loaded (1 OpenCV thread each), kept between runs:
    `run` times one pass of `work` over tasks. A context manager (the processes end with it)."""

    def __init__(self, engine: str, params: AnalyzeParams, processes: int) -> None:
        settings, _ = engine_settings(engine)
        ctx = multiprocessing.get_context("spawn")
        started = ctx.Value("i", 0)
        load_started = time.perf_counter()
        self._pool = ctx.Pool(processes, initializer=_init, initargs=(settings, params, started))
        self._pool.map(_await_all, [processes] * processes, chunksize=1)
        self.load_seconds = time.perf_counter() - load_started
        self.processes = processes

    def __enter__(self) -> BarePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.terminate()
        self._pool.join()

    def run(self, work: Callable[[T], tuple[int, int]], tasks: Sequence[T]) -> tuple[float, list[tuple[int, int]]]:
        t0 = time.perf_counter()
        results = list(self._pool.imap_unordered(work, tasks, chunksize=1))
        return time.perf_counter() - t0, results


def _run_bare(
    engine: str,
    params: AnalyzeParams,
    work: Callable[[T], tuple[int, int]],
    tasks: Sequence[T],
    *,
    processes: int,
    passes: int,
) -> _BareRun:
    """`work` over every task `passes` times in `processes` spawned processes (1 OpenCV thread each, models
    loaded before the clock starts, a short warm-up first)."""
    with BarePool(engine, params, processes) as pool:
        pool.run(work, tasks[: processes * 2])  # warm-up
        pass_seconds = []
        results: list[tuple[int, int]] = []
        for _ in range(passes):
            seconds, results = pool.run(work, tasks)
            pass_seconds.append(seconds)
    return _BareRun(pool.load_seconds, pass_seconds, results)


def identify_tasks(
    probes: Sequence[Probe], fused_faces: Mapping[str, Sequence[int]]
) -> list[tuple[str, tuple[int, ...]]]:
    """The bare engine's identify task per probe: its path and which of its faces the service fused."""
    return [(str(p.path), tuple(fused_faces.get(p.filename, ()))) for p in probes]


def bare_engine_identify(
    probes: Sequence[Probe],
    engine: str,
    *,
    processes: int,
    passes: int,
    fused_faces: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Every probe `passes` times through the bare engine in `processes` processes (1 OpenCV thread each)."""
    _, params = engine_settings(engine)
    tasks = identify_tasks(probes, fused_faces or {})
    run = _run_bare(engine, params, identify_work, tasks, processes=processes, passes=passes)
    total = sum(run.pass_seconds)
    return {
        "what": (
            "facegate.vision.analysis.analyze(secondary='input', crops=False) per probe"
            + (", plus embed_secondary for the faces the service fused" if engine == "fusion" else "")
            + f", {processes} processes x 1 OpenCV thread, photos read from disk by the workers"
        ),
        "processes": processes,
        "images": len(tasks),
        "passes": passes,
        "pass_seconds": [round(s, 3) for s in run.pass_seconds],
        "images_per_s": round(len(tasks) * passes / total, 2),
        "faces_analysed_per_pass": sum(n for n, _ in run.results),
        "second_descriptors_per_pass": sum(s for _, s in run.results),
        "fused_faces_known": fused_faces is not None,
        "model_load_seconds": round(run.load_seconds, 3),
        "analyze_params": asdict(params),
    }


def bare_engine_enroll(photos: Sequence[Path], engine: str, *, processes: int, passes: int = 1) -> dict[str, Any]:
    """Every photo `passes` times through the bare engine as enroll analyses it, in `processes` processes
    (1 OpenCV thread each): the ceiling of `facegate enroll`."""
    _, params = engine_settings(engine)
    params = replace(params, max_faces=1)
    tasks = [str(p) for p in photos]
    run = _run_bare(engine, params, _enroll_work, tasks, processes=processes, passes=passes)
    total = sum(run.pass_seconds)
    return {
        "what": (
            "facegate.vision.analysis.analyze(max_faces=1, crops=False, secondary='embed') per photo (the work "
            f"of enroll's engine task), {processes} processes x 1 OpenCV thread, photos read from disk by the workers"
        ),
        "processes": processes,
        "images": len(tasks),
        "passes": passes,
        "pass_seconds": [round(s, 3) for s in run.pass_seconds],
        "images_per_s": round(len(tasks) * passes / total, 2),
        "faces_embedded_per_pass": sum(n for n, _ in run.results),
        "second_descriptors_per_pass": sum(s for _, s in run.results),
        "model_load_seconds": round(run.load_seconds, 3),
        "analyze_params": asdict(params),
    }
