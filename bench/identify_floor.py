"""How much of identify's distance to the bare engine is facegate's own, and how much the stack's floor.

Three sides take turns on the same probes, 2 concurrent HTTP clients for the two servers:
- the bare engine: `analyze` in 2 single-threaded processes (facegate_bench.ceiling.BarePool, the ceiling);
- the floor: FastAPI + uvicorn (h11) + facegate's engine pool and nothing else (facegate_bench/floor_app.py: no
  API key, database, search, history, crop or metrics);
- facegate: `facegate serve` on a fresh store with the seeded gallery enrolled (key check, search, history row,
  crop file, metrics: everything an identify does).

    PYTHONPATH=bench .venv/bin/python bench/identify_floor.py ../shared/faces/calib --probes 400 --rounds 6

Turns go in rotating order (each side first, second and third equally often) on alternating halves of the probes,
every side started and warm, each server let go quiet before any turn, so the VM's CPU speed drift falls on all
three alike. Reported per side: images/s, share of the bare engine, and for the servers the CPU milliseconds per
photo of the server's main process, its engine workers and the clients (this process). opencv only: the fused
engine's second descriptor runs on facegate's decision, which the floor does not make.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from facegate.services.evaluation import load_faceset
from facegate_bench.ceiling import BarePool, engine_settings, identify_tasks, identify_work
from facegate_bench.client import enroll_gallery, identify
from facegate_bench.interleaved import settle
from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad, process_times
from facegate_bench.processes import BENCH_KEY
from facegate_bench.server import Server, running_server
from facegate_bench.split import split_gallery

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 2
ENGINE = "opencv"
SIDES = ("bare_engine", "floor", "facegate")


class HttpSide:
    """A server under test: its client, and the CPU it and its engine workers used in its turns."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pid = server.process.pid
        self.client = httpx.Client(
            base_url=server.url,
            timeout=120.0,
            limits=httpx.Limits(max_connections=CLIENTS + 2),
            headers={"X-API-Key": BENCH_KEY},
        )
        self.cpu = {"server_main": 0.0, "engine_workers": 0.0, "clients": 0.0}

    def _cpu(self) -> tuple[float, float, float]:
        processes = process_times()
        main = processes[self.pid][1] if self.pid in processes else 0.0
        workers = sum(cpu for ppid, cpu, _ in processes.values() if ppid == self.pid)
        own = os.times()
        return main, workers, own.user + own.system

    def run(self, threads: ThreadPoolExecutor, payload: list[tuple[str, bytes]]) -> float:
        settle(self.pid)
        before = self._cpu()
        started = time.perf_counter()
        list(threads.map(lambda item: identify(self.client, *item), payload))
        took = time.perf_counter() - started
        after = self._cpu()
        for key, b, a in zip(self.cpu, before, after, strict=True):
            self.cpu[key] += a - b
        return took


def measure(faceset: Path, probes: int, rounds: int, seed: int) -> dict[str, Any]:
    split = split_gallery(load_faceset(faceset.resolve()).photos, seed)
    chosen = random.Random(seed).sample(split.probes, min(probes, len(split.probes)))
    payload = [(p.filename, p.path.read_bytes()) for p in chosen]
    tasks = identify_tasks(chosen, {})
    _, params = engine_settings(ENGINE)
    half = max(1, len(payload) // 2)
    seconds = dict.fromkeys(SIDES, 0.0)
    images = dict.fromkeys(SIDES, 0)
    with tempfile.TemporaryDirectory(prefix="facegate-floor-") as tmp, ExitStack() as stack:
        servers = {}
        for name, asgi_app in (("floor", "facegate_bench.floor_app:app"), ("facegate", None)):
            work = Path(tmp, name)
            work.mkdir()
            server = stack.enter_context(running_server(work / "data", ENGINE, work / "serve.log", asgi_app=asgi_app))
            servers[name] = HttpSide(server)
            stack.callback(servers[name].client.close)
        enroll_gallery(servers["facegate"].client, split.gallery)
        pool = stack.enter_context(BarePool(ENGINE, params, CLIENTS))
        threads = stack.enter_context(ThreadPoolExecutor(max_workers=CLIENTS))
        pool.run(identify_work, tasks[: 2 * CLIENTS])  # warm-up
        for side in servers.values():
            side.run(threads, payload[: 4 * CLIENTS])
            side.cpu = dict.fromkeys(side.cpu, 0.0)
        other = stack.enter_context(OtherLoad())
        for r in range(rounds):
            part = slice((r % 2) * half, (r % 2 + 1) * half)
            order = SIDES[r % 3 :] + SIDES[: r % 3]
            for name in order if r % 2 == 0 else order[::-1]:
                if name == "bare_engine":
                    for side in servers.values():
                        settle(side.pid)
                    took, _ = pool.run(identify_work, tasks[part])
                else:
                    took = servers[name].run(threads, payload[part])
                seconds[name] += took
                images[name] += len(payload[part])
        stack.pop_all().close()  # servers stopped, other load sampled to the end
    rates = {name: images[name] / seconds[name] for name in SIDES}
    result: dict[str, Any] = {
        name: {
            "images": images[name],
            "images_per_s": round(rates[name], 2),
            "share_of_bare_engine": round(rates[name] / rates["bare_engine"], 3),
        }
        for name in SIDES
    }
    for name, side in servers.items():
        result[name]["cpu_ms_per_image"] = {key: round(1000 * v / images[name], 2) for key, v in side.cpu.items()}
    result["other_load"] = other.summary()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faceset", type=Path)
    parser.add_argument("--name", default=None, help="The face set's name in the report (default: its folder's)")
    parser.add_argument("--probes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "identify-floor.json")
    args = parser.parse_args()
    name = args.name or args.faceset.resolve().name
    report = {
        "what": __doc__.split("\n\n")[0] if __doc__ else "",
        "machine": machine(),
        "engine": ENGINE,
        "faceset": name,
        "probes": args.probes,
        "rounds": args.rounds,
        **measure(args.faceset, args.probes, args.rounds, args.seed),
    }
    runs = json.loads(args.output.read_text()) if args.output.exists() else {}
    runs[name] = report
    args.output.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps({side: report[side] for side in SIDES}, indent=2))


if __name__ == "__main__":
    main()
