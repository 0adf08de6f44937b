"""Identify over HTTP and the bare engine taking turns on the same probes: the share of the ceiling with the VM's
CPU speed drift cancelled.

The CPU speed of this VM drifts by up to 2x within minutes (the harness's single-threaded canary loop takes 12 ms
and 23 ms in one run, with nothing else running), so a share computed from two phases measured minutes apart can
be off by tens of percent either way. Here the bare engine and one or more HTTP servers (facegate, and optionally
the floor: floor_app.py) run in `rounds` turns of half the probes each, every side started and its models loaded,
in rotating order (two sides: ABBA), so that the drift falls on all alike. Before each turn every server is let go
quiet (its work after a turn, such as grouping unknown faces, is waited out); the CPU the servers still used
during the bare turns is reported, and per server the CPU per photo of its main process, its engine workers and
the clients (this process).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from facegate_bench.ceiling import BarePool, engine_settings, identify_tasks, identify_work
from facegate_bench.client import identify
from facegate_bench.other_load import server_cpu
from facegate_bench.split import Probe

# A server counts as quiet once its processes used less than this much CPU over SETTLE_WINDOW seconds.
SETTLE_CORES = 0.02
SETTLE_WINDOW = 0.5
SETTLE_MAX_SECONDS = 30.0
BARE = "bare_engine"


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by `pid` and its children (a server and its engine workers)."""
    return sum(server_cpu(pid))


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


@dataclass
class HttpSide:
    """A server taking turns: its client and pid; `fields` sends form fields with each probe (the floor is told
    which faces facegate fused, so that it computes the same second descriptors as the bare engine)."""

    client: httpx.Client
    pid: int
    fields: Callable[[str], Mapping[str, str]] | None = None


def _cpu(pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: the server's main process, its children (engine workers), this process (the clients)."""
    main, workers = server_cpu(pid)
    own = os.times()
    return main, workers, own.user + own.system


def turn_order(sides: Sequence[str], r: int) -> list[str]:
    """Round `r`'s order: rotated every second round, reversed every other one (two sides: ABBA BAAB), so each
    side goes first, in the middle and last equally often over 2 x len(sides) rounds."""
    shift = (r // 2) % len(sides)
    order = list(sides[shift:]) + list(sides[:shift])
    return order[::-1] if r % 2 else order


def interleaved_share(
    servers: Mapping[str, HttpSide],
    probes: Sequence[Probe],
    engine: str,
    fused_faces: Mapping[str, Sequence[int]],
    *,
    concurrency: int,
    processes: int,
    rounds: int,
) -> dict[str, Any]:
    """Each server of `servers` over HTTP (`concurrency` client threads) and the bare engine (`processes`
    processes x 1 thread), `rounds` turns each on alternating halves of the probes. `share_of_ceiling` is the
    "facegate" server's; every server's is under `servers`."""
    _, params = engine_settings(engine)
    payload = [(p.filename, p.path.read_bytes()) for p in probes]
    tasks = identify_tasks(probes, fused_faces)
    half = max(1, len(payload) // 2)
    sides = [BARE, *servers]
    seconds = dict.fromkeys(sides, 0.0)
    images = dict.fromkeys(sides, 0)
    cpu = {name: [0.0, 0.0, 0.0] for name in servers}
    server_cpu_in_bare_turns = settle_seconds = 0.0

    def send(side: HttpSide, item: tuple[str, bytes]) -> None:
        identify(side.client, *item, fields=side.fields(item[0]) if side.fields else None)

    with BarePool(engine, params, processes) as pool, ThreadPoolExecutor(max_workers=concurrency) as threads:
        pool.run(identify_work, tasks[: processes * 2])  # warm-up
        for r in range(rounds):
            part = slice((r % 2) * half, (r % 2 + 1) * half)
            for name in turn_order(sides, r):
                settle_seconds += sum(settle(side.pid) for side in servers.values())
                if name == BARE:
                    before = sum(_tree_cpu(side.pid) for side in servers.values())
                    took, _ = pool.run(identify_work, tasks[part])
                    server_cpu_in_bare_turns += sum(_tree_cpu(side.pid) for side in servers.values()) - before
                else:
                    side = servers[name]
                    cpu_before = _cpu(side.pid)
                    started = time.perf_counter()
                    list(threads.map(lambda item, side=side: send(side, item), payload[part]))
                    took = time.perf_counter() - started
                    cpu[name] = [t + a - b for t, a, b in zip(cpu[name], _cpu(side.pid), cpu_before, strict=True)]
                seconds[name] += took
                images[name] += len(payload[part])
    rates = {k: images[k] / seconds[k] for k in sides}
    per_server = {
        name: {
            "images_per_s": round(rates[name], 2),
            "share_of_ceiling": round(rates[name] / rates[BARE], 3),
            "cpu_ms_per_image": {
                key: round(1000 * value / images[name], 2)
                for key, value in zip(("server_main", "engine_workers", "clients"), cpu[name], strict=True)
            },
        }
        for name in servers
    }
    return {
        "what": (
            f"{rounds} turns each of {', '.join(servers)} over HTTP ({concurrency} clients) and the bare engine "
            f"({processes} processes x 1 thread) on alternating halves of the probes, rotating order, all started "
            "and warm"
        ),
        "rounds": rounds,
        "images": images,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "facegate_images_per_s": round(rates["facegate"], 2),
        "bare_engine_images_per_s": round(rates[BARE], 2),
        "share_of_ceiling": round(rates["facegate"] / rates[BARE], 3),
        "servers": per_server,
        "server_cpu_seconds_during_bare_turns": round(server_cpu_in_bare_turns, 3),
        "settle_seconds": round(settle_seconds, 3),
    }
