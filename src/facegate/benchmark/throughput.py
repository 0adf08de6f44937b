"""Identify throughput over HTTP: every probe with concurrent clients, scored on the first pass."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from facegate.benchmark.client import identify
from facegate.benchmark.scoring import prediction_from_identify, score
from facegate.benchmark.split import Probe


def identify_throughput(
    client: httpx.Client, probes: Sequence[Probe], *, concurrency: int, passes: int
) -> dict[str, Any]:
    """Every probe over HTTP with `concurrency` client threads, `passes` times; accuracy from the first pass."""
    payload = [(p.filename, p.path.read_bytes()) for p in probes]
    with ThreadPoolExecutor(max_workers=concurrency) as threads:
        # Warm-up: the first requests of each worker pay for lazily built state.
        list(threads.map(lambda item: identify(client, *item), payload[: concurrency * 2]))
        bodies: list[dict[str, Any]] = []
        pass_seconds = []
        for i in range(passes):
            started = time.perf_counter()
            results = list(threads.map(lambda item: identify(client, *item), payload))
            pass_seconds.append(time.perf_counter() - started)
            if i == 0:
                bodies = results
    total = sum(pass_seconds)
    largest = {p.filename: prediction_from_identify(b) for p, b in zip(probes, bodies, strict=True)}
    any_face = {
        p.filename: prediction_from_identify(b, largest_only=False) for p, b in zip(probes, bodies, strict=True)
    }
    return {
        "images": len(probes),
        "passes": passes,
        "concurrency": concurrency,
        "pass_seconds": [round(s, 3) for s in pass_seconds],
        "images_per_s": round(len(probes) * passes / total, 2),
        "accuracy": score(probes, largest),
        "accuracy_nearest_over_all_faces": score(probes, any_face),
    }
