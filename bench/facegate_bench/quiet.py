"""Measuring on a quiet machine: wait for other processes to go quiet, measure again if they did not stay
quiet, and time a CPU yardstick before and after."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from facegate_bench.options import BenchOptions, Log
from facegate_bench.other_load import OtherLoad

T = TypeVar("T")

# More than this many cores used by other processes (on a 2-core machine) visibly moves the figures.
CONTENDED_CORES = 0.1


def cpu_canary_ms(rounds: int = 7) -> float:
    """Best time of a fixed single-threaded Python loop: a yardstick of the CPU's speed at the time of a run, so
    that runs on the same (virtual) machine can be compared (the host's load can change it by 10-20%)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(1000 * best, 2)


def wait_for_quiet(max_wait: float, log: Log, *, busy_cores: float = 0.15, window: float = 3.0) -> dict[str, Any]:
    """Wait (up to `max_wait` seconds) until other processes use less than `busy_cores` for a `window`."""
    started = time.perf_counter()
    next_log = 0.0
    while True:
        with OtherLoad() as load:
            time.sleep(window)
        cores = load.summary()["other_processes_cores"]
        waited = time.perf_counter() - started
        if cores < busy_cores or waited >= max_wait:
            return {
                "waited_seconds": round(waited, 1),
                "other_processes_cores_at_start": cores,
                "quiet": cores < busy_cores,
            }
        if waited >= next_log:
            log(f"  machine busy: other processes use {cores:.2f} cores; waiting (up to {max_wait:.0f}s)...")
            next_log = waited + 30.0


def measure_quietly(name: str, fn: Callable[[], T], options: BenchOptions, load: dict[str, Any], log: Log) -> T:
    """Run one phase, waiting for a quiet machine first; if other processes still used CPU during it, run it
    again (up to `options.attempts` times) and keep the attempt during which they used the least. Every
    attempt's figure of other load is recorded in `load[name]`."""
    attempts: list[dict[str, Any]] = []
    best: tuple[T, float] | None = None
    for attempt in range(1, options.attempts + 1):
        start = wait_for_quiet(options.quiet_wait, log)
        canary_before = cpu_canary_ms()
        with OtherLoad() as other:
            result = fn()
        canary = [canary_before, cpu_canary_ms()]
        summary = {"attempt": attempt, **start, **other.summary(), "cpu_canary_ms_before_after": canary}
        attempts.append(summary)
        cores = summary["other_processes_cores"]
        if best is None or cores < best[1]:
            best = (result, cores)
            chosen = attempt
        if cores <= CONTENDED_CORES:
            break
        again = "; measuring again" if attempt < options.attempts else ""
        log(f"  {name}: other processes used {cores:.2f} cores meanwhile{again}")
    assert best is not None
    load[name] = {"chosen_attempt": chosen, "other_processes_cores": best[1], "attempts": attempts}
    return best[0]
