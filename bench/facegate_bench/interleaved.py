"""Identify over HTTP and the bare engine taking turns on the same probes: the share of the ceiling with the VM's
CPU speed drift cancelled.

The CPU speed of this VM drifts by up to 2x within minutes (the harness's single-threaded canary loop takes 12 ms
and 23 ms in one run, with nothing else running), so a share computed from two phases measured minutes apart can
be off by tens of percent either way. Here both run in `rounds` turns of half the probes each, in ABBA order,
with the server and the bare engine's processes both started and their models loaded, so that the drift falls on
both alike. Before each bare-engine turn the server is let go quiet (its work after a turn, such as grouping
unknown faces, is waited out), and the CPU it still used during the bare turns is reported.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from facegate_bench.ceiling import BarePool, engine_settings, identify_tasks, identify_work
from facegate_bench.client import identify
from facegate_bench.other_load import process_times
from facegate_bench.split import Probe

# The server counts as quiet once its processes used less than this much CPU over SETTLE_WINDOW seconds.
SETTLE_CORES = 0.02
SETTLE_WINDOW = 0.5
SETTLE_MAX_SECONDS = 30.0


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by `pid` and its children (the server and its engine workers)."""
    return sum(cpu for p, (ppid, cpu, _) in process_times().items() if p == pid or ppid == pid)


def settle(pid: int) -> float:
    """Wait until the server is quiet; returns the seconds waited."""
    started = time.perf_counter()
    before = _tree_cpu(pid)
    while time.perf_counter() - started < SETTLE_MAX_SECONDS:
        time.sleep(SETTLE_WINDOW)
        now = _tree_cpu(pid)
        if now - before < SETTLE_CORES * SETTLE_WINDOW:
            break
        before = now
    return time.perf_counter() - started


def interleaved_share(
    client: httpx.Client,
    server_pid: int,
    probes: Sequence[Probe],
    engine: str,
    fused_faces: Mapping[str, Sequence[int]],
    *,
    concurrency: int,
    processes: int,
    rounds: int,
) -> dict[str, Any]:
    """facegate over HTTP (`concurrency` client threads) and the bare engine (`processes` processes x 1 thread),
    `rounds` turns each on alternating halves of the probes."""
    _, params = engine_settings(engine)
    payload = [(p.filename, p.path.read_bytes()) for p in probes]
    tasks = identify_tasks(probes, fused_faces)
    half = max(1, len(payload) // 2)
    seconds = {"facegate": 0.0, "bare_engine": 0.0}
    images = {"facegate": 0, "bare_engine": 0}
    server_cpu_in_bare_turns = settle_seconds = 0.0
    with BarePool(engine, params, processes) as pool, ThreadPoolExecutor(max_workers=concurrency) as threads:
        pool.run(identify_work, tasks[: processes * 2])  # warm-up
        for r in range(rounds):
            part = slice((r % 2) * half, (r % 2 + 1) * half)
            for turn in ("facegate", "bare_engine") if r % 2 == 0 else ("bare_engine", "facegate"):
                if turn == "facegate":
                    started = time.perf_counter()
                    list(threads.map(lambda item: identify(client, *item), payload[part]))
                    seconds[turn] += time.perf_counter() - started
                    images[turn] += len(payload[part])
                else:
                    settle_seconds += settle(server_pid)
                    before = _tree_cpu(server_pid)
                    took, _ = pool.run(identify_work, tasks[part])
                    server_cpu_in_bare_turns += _tree_cpu(server_pid) - before
                    seconds[turn] += took
                    images[turn] += len(tasks[part])
    rates = {k: images[k] / seconds[k] for k in seconds}
    return {
        "what": (
            f"{rounds} turns each of facegate over HTTP ({concurrency} clients) and the bare engine ({processes} "
            "processes x 1 thread) on alternating halves of the probes, ABBA order, both started and warm"
        ),
        "rounds": rounds,
        "images": images,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "facegate_images_per_s": round(rates["facegate"], 2),
        "bare_engine_images_per_s": round(rates["bare_engine"], 2),
        "share_of_ceiling": round(rates["facegate"] / rates["bare_engine"], 3),
        "server_cpu_seconds_during_bare_turns": round(server_cpu_in_bare_turns, 3),
        "settle_seconds": round(settle_seconds, 3),
    }
