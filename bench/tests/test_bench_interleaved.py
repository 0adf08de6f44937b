"""Identify over HTTP and the bare engine in interleaved turns: a smoke run against a real `facegate serve` on two
dev photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from facegate_bench.client import enroll_gallery
from facegate_bench.interleaved import settle, interleaved_share
from facegate_bench.processes import BENCH_KEY
from facegate_bench.server import running_server
from facegate_bench.split import Probe


def test_turns_alternate_over_halves_of_the_probes(tmp_path: Path, dev: Path) -> None:
    photos = sorted((dev / "barack_obama").glob("*.jpg"))[:3]
    probes = [Probe(path, "barack_obama", True) for path in photos[1:]]
    with (
        running_server(tmp_path / "data", "opencv", tmp_path / "serve.log") as server,
        httpx.Client(base_url=server.url, timeout=120.0, headers={"X-API-Key": BENCH_KEY}) as client,
    ):
        assert enroll_gallery(client, {"barack_obama": photos[0]})["failed"] == {}
        result = interleaved_share(
            client, server.process.pid, probes, "opencv", {}, concurrency=1, processes=1, rounds=2
        )
    # Two turns each, one probe (half of two) per turn.
    assert result["images"] == {"facegate": 2, "bare_engine": 2}
    assert result["facegate_images_per_s"] > 0 and result["bare_engine_images_per_s"] > 0
    expected = result["facegate_images_per_s"] / result["bare_engine_images_per_s"]
    assert abs(result["share_of_ceiling"] - expected) < 0.01
    assert result["server_cpu_seconds_during_bare_turns"] >= 0


def testsettle_returns_once_a_process_is_idle() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert settle(idle.pid) < 5
    finally:
        idle.kill()
        idle.wait()
