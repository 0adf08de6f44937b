"""Identify over HTTP and the bare engine in interleaved turns: a smoke run against a real `facegate serve` on two
dev photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from facegate_bench.client import enroll_gallery
from facegate_bench.interleaved import HttpSide, interleaved_share, settle, turn_order
from facegate_bench.processes import BENCH_KEY
from facegate_bench.server import FLOOR_APP, running_server
from facegate_bench.split import Probe


def test_turn_order_puts_each_side_in_each_place_equally_often() -> None:
    assert [turn_order("ab", r) for r in range(4)] == [["a", "b"], ["b", "a"], ["b", "a"], ["a", "b"]]
    orders = [turn_order("abc", r) for r in range(6)]
    for place in range(3):
        assert sorted(order[place] for order in orders) == ["a", "a", "b", "b", "c", "c"]


def test_facegate_the_floor_and_the_bare_engine_take_turns(tmp_path: Path, dev: Path) -> None:
    photos = sorted((dev / "barack_obama").glob("*.jpg"))[:3]
    probes = [Probe(path, "barack_obama", True) for path in photos[1:]]
    with (
        running_server(tmp_path / "data", "opencv", tmp_path / "serve.log") as server,
        running_server(tmp_path / "floor", "opencv", tmp_path / "floor.log", asgi_app=FLOOR_APP) as floor,
        httpx.Client(base_url=server.url, timeout=120.0, headers={"X-API-Key": BENCH_KEY}) as client,
        httpx.Client(base_url=floor.url, timeout=120.0) as floor_client,
    ):
        assert enroll_gallery(client, {"barack_obama": photos[0]})["failed"] == {}
        # The floor answers with the faces it analysed (no key needed, nothing stored).
        answer = floor_client.post("/api/v1/identify", files={"image": ("p.jpg", photos[1].read_bytes())})
        assert answer.status_code == 200 and answer.json() == {"faces": 1, "second_descriptors": 0}
        servers = {
            "facegate": HttpSide(client, server.process.pid),
            "floor": HttpSide(floor_client, floor.process.pid, lambda name: {"fused": ""}),
        }
        result = interleaved_share(servers, probes, "opencv", {}, concurrency=1, processes=1, rounds=2)
    # Two turns each, one probe (half of two) per turn.
    assert result["images"] == {"bare_engine": 2, "facegate": 2, "floor": 2}
    assert result["facegate_images_per_s"] > 0 and result["bare_engine_images_per_s"] > 0
    expected = result["facegate_images_per_s"] / result["bare_engine_images_per_s"]
    assert abs(result["share_of_ceiling"] - expected) < 0.01
    floor_share = result["servers"]["floor"]["share_of_ceiling"]
    assert floor_share > 0 and result["servers"]["facegate"]["share_of_ceiling"] == result["share_of_ceiling"]
    for name in ("facegate", "floor"):
        used = result["servers"][name]["cpu_ms_per_image"]
        # /proc counts CPU in 10 ms ticks: two requests may cost the floor's main process or the clients less than
        # one. The engine workers' models take far more than a tick per photo.
        assert used["engine_workers"] > 0 and used["server_main"] >= 0 and used["clients"] >= 0
    assert result["server_cpu_seconds_during_bare_turns"] >= 0


def test_settle_returns_once_a_process_is_idle() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert settle(idle.pid) < 5
    finally:
        idle.kill()
        idle.wait()
