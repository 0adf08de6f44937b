"""What one benchmark run is asked to do, and where its progress goes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ENGINES = ("fusion", "opencv", "dlib")

Log = Callable[[str], None]


@dataclass
class BenchOptions:
    faceset: Path
    # Every engine is measured in the same run, against one run of the baseline on the same split.
    engines: tuple[str, ...] = ("fusion",)
    baseline: bool = True
    identify: bool = True  # identify throughput (HTTP, bare engine, CLI) and latency; False: bulk enroll only
    ceiling: bool = True  # the bare engine in `cpus` single-threaded processes
    concurrency: int = 2  # identify clients over HTTP
    passes: int = 3
    latency_requests: int = 100  # 0: no latency phase
    enroll_runs: int = 3  # 0: no bulk-enroll phase
    enroll_max_photos: int = 0  # bulk enroll on every person, or a seeded sample of people with about this many photos
    seed: int = 0
    max_probes: int = 0  # 0: every probe; else a seeded sample of this many (the gallery stays whole)
    # Throughput target against the face_recognition CLI: >= 5x on the dev set's large photos, about 3.5x on
    # small ones (LFW-size), where its dlib models are cheap too.
    cli_ratio_target: float = 5.0
    ceiling_share_target: float = 0.9  # identify over HTTP vs the bare engine
    # Turns each of identify over HTTP and the bare engine on alternating halves of the probes (interleaved.py);
    # 0: none. The share the target is judged on when measured.
    interleaved_rounds: int = 6
    # The floor (floor_app.py: FastAPI, uvicorn and the engine pool, nothing else) takes those turns too.
    floor: bool = True
    quiet_wait: float = 300.0  # seconds to wait for other processes to go quiet before each phase
    attempts: int = 3  # a phase during which other processes used CPU is measured again, up to this many times
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
