"""What one benchmark run is asked to do, and where its progress goes."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ENGINES = ("opencv", "dlib", "fusion")

Log = Callable[[str], None]


@dataclass
class BenchOptions:
    faceset: Path
    engine: str = "opencv"
    baseline: bool = True
    concurrency: int = 4
    passes: int = 3
    latency_requests: int = 100
    enroll_runs: int = 3
    seed: int = 0
    quiet_wait: float = 300.0  # seconds to wait for other processes to go quiet before each phase
    attempts: int = 3  # a phase during which other processes used CPU is measured again, up to this many times
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
