"""Identify throughput over HTTP: every probe with concurrent clients, scored on the first pass."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from facegate_bench.client import identify
from facegate_bench.scoring import prediction_from_identify, score
from facegate_bench.split import Probe


def fused_faces(probes: Sequence[Probe], bodies: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Probe file name -> positions (largest face first) of the faces whose answer the fused engine's second
    descriptor decided: the extra work the bare engine must do too to be the same work."""
    fused = {}
    for probe, body in zip(probes, bodies, strict=True):
        positions = [i for i, face in enumerate(body.get("faces", [])) if face.get("decided_by") == "fusion"]
        if positions:
            fused[probe.filename] = positions
    return fused


def identify_throughput(
    client: httpx.Client, probes: Sequence[Probe], *, concurrency: int, passes: int
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Every probe over HTTP with `concurrency` client threads, `passes` times; accuracy from the first pass.
    Also returns which faces were fused (see `fused_faces`)."""
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
    fused = fused_faces(probes, bodies)
    report = {
        "images": len(probes),
        "passes": passes,
        "concurrency": concurrency,
        "pass_seconds": [round(s, 3) for s in pass_seconds],
        "images_per_s": round(len(probes) * passes / total, 2),
        "accuracy": score(probes, largest),
        "accuracy_nearest_over_all_faces": score(probes, any_face),
        "faces_decided_by_fusion": sum(len(v) for v in fused.values()),
    }
    return report, fused
