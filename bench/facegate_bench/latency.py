"""Identify latency: sequential requests of one 640x480 photo with one face, and the server's view from
/metrics."""

from __future__ import annotations

import io
import re
import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageOps

from facegate_bench.client import identify

LATENCY_SIZE = (640, 480)
LATENCY_SOURCE = ("barack_obama", "1.jpg")


def latency_image(faceset_root: Path, fallback: Path) -> tuple[bytes, str]:
    """A 640x480 JPEG with one face, made deterministically from a dev photo (fitted and padded, not stretched)."""
    source = faceset_root.joinpath(*LATENCY_SOURCE)
    if not source.is_file():
        source = fallback
    with Image.open(source) as img:
        upright = ImageOps.exif_transpose(img).convert("RGB")
    framed = ImageOps.pad(upright, LATENCY_SIZE, method=Image.Resampling.LANCZOS, color=(127, 127, 127))
    out = io.BytesIO()
    framed.save(out, format="JPEG", quality=90)
    return out.getvalue(), source.relative_to(source.parents[1]).as_posix()


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def metric_sums(prometheus_text: str) -> dict[str, float]:
    """`name{labels}` -> value for the histogram _sum and _count samples of /metrics."""
    values: dict[str, float] = {}
    for line in prometheus_text.splitlines():
        m = _SAMPLE.match(line)
        if m and (m["name"].endswith("_sum") or m["name"].endswith("_count")):
            values[f"{m['name']}{{{m['labels']}}}"] = float(m["value"])
    return values


def _mean_ms(before: Mapping[str, float], after: Mapping[str, float], name: str, labels: str) -> float | None:
    key_sum, key_count = f"{name}_sum{{{labels}}}", f"{name}_count{{{labels}}}"
    count = after.get(key_count, 0.0) - before.get(key_count, 0.0)
    if count <= 0:
        return None
    return round(1000 * (after.get(key_sum, 0.0) - before.get(key_sum, 0.0)) / count, 2)


def identify_latency(client: httpx.Client, image: bytes, *, requests: int, warmup: int = 10) -> dict[str, Any]:
    """Sequential requests, one at a time, timed at the client; the server's own view from /metrics."""
    for _ in range(warmup):
        identify(client, "latency.jpg", image)
    before = metric_sums(client.get("/metrics").text)
    times: list[float] = []
    body: dict[str, Any] = {}
    for _ in range(requests):
        started = time.perf_counter()
        body = identify(client, "latency.jpg", image)
        times.append(1000 * (time.perf_counter() - started))
    after = metric_sums(client.get("/metrics").text)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    faces = body.get("faces", [])
    return {
        "requests": requests,
        "warmup": warmup,
        "p50_ms": round(cuts[49], 2),
        "p95_ms": round(cuts[94], 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "min_ms": round(min(times), 2),
        "max_ms": round(max(times), 2),
        "faces_found": len(faces),
        "match": faces[0]["match"]["name"] if faces and faces[0].get("match") else None,
        "server_request_mean_ms": _mean_ms(before, after, "facegate_http_request_seconds", 'route="/api/v1/identify"'),
        # Decode + detect + align + embed in a pool worker, including the hop to and from the worker process.
        "server_engine_mean_ms": _mean_ms(before, after, "facegate_engine_seconds", 'operation="identify"'),
    }
