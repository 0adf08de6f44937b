"""Two versions of facegate side by side: the identify overhead of checkout A against checkout B, measured at the
same time on the same machine, so that the VM's CPU speed drift (the same loop takes 15 to 31 ms at different
moments here) cancels out.

    git worktree add /tmp/facegate-a <commit>          # the version to compare against
    PYTHONPATH=bench .venv/bin/python bench/identify_ab.py ../shared/faces/calib --a /tmp/facegate-a/src \\
        --b src --engine opencv --probes 200 --rounds 6

Both servers (`facegate serve` children of this environment, each importing facegate from its `--a`/`--b` src
directory through PYTHONPATH, each on a fresh store) enroll the seeded gallery of the face set. The probes are then
sent by 2 client threads, in chunks, to A and B in turn (ABBA order, so that neither side always goes first). Per
photo: CPU milliseconds of each server's main process and of its engine workers, read from /proc, and images/s.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from facegate.services.evaluation import load_faceset
from facegate_bench.client import enroll_gallery, identify
from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad, server_cpu
from facegate_bench.processes import BENCH_KEY
from facegate_bench.server import Server, running_server
from facegate_bench.split import split_gallery

REPO = Path(__file__).resolve().parents[1]
CLIENTS = 2


class Side:
    def __init__(self, name: str, server: Server) -> None:
        self.name = name
        self.server = server
        self.client = httpx.Client(
            base_url=server.url,
            timeout=120.0,
            limits=httpx.Limits(max_connections=CLIENTS + 2),
            headers={"X-API-Key": BENCH_KEY},
        )
        self.main_cpu = self.worker_cpu = self.wall = 0.0
        self.images = 0

    def cpu(self) -> tuple[float, float]:
        return server_cpu(self.server.process.pid)

    def send(self, payload: list[tuple[str, bytes]], *, count: bool = True) -> None:
        before = self.cpu()
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda item: identify(self.client, *item), payload))
        wall = time.perf_counter() - started
        after = self.cpu()
        if count:
            self.main_cpu += after[0] - before[0]
            self.worker_cpu += after[1] - before[1]
            self.wall += wall
            self.images += len(payload)

    def summary(self) -> dict[str, float]:
        return {
            "images": self.images,
            "images_per_s": round(self.images / self.wall, 2),
            "server_main_cpu_ms_per_image": round(1000 * self.main_cpu / self.images, 3),
            "engine_workers_cpu_ms_per_image": round(1000 * self.worker_cpu / self.images, 3),
        }


def measure(faceset: Path, a: Path, b: Path, engine: str, probes: int, rounds: int, seed: int) -> dict[str, Any]:
    split = split_gallery(load_faceset(faceset.resolve()).photos, seed)
    chosen = random.Random(seed).sample(split.probes, min(probes, len(split.probes)))
    payload = [(p.filename, p.path.read_bytes()) for p in chosen]
    with tempfile.TemporaryDirectory(prefix="facegate-ab-") as tmp, ExitStack() as stack:
        sides = []
        for name, src in (("a", a), ("b", b)):
            work = Path(tmp, name)
            work.mkdir()
            server = stack.enter_context(
                running_server(work / "data", engine, work / "serve.log", extra_env={"PYTHONPATH": str(src.resolve())})
            )
            side = Side(name, server)
            stack.callback(side.client.close)
            sides.append(side)
        for side in sides:
            enroll_gallery(side.client, split.gallery)
            side.send(payload, count=False)  # warm-up
        chunk = max(1, len(payload) // 2)
        with OtherLoad() as other:
            for r in range(rounds):
                order = sides if r % 2 == 0 else sides[::-1]
                part = payload[(r % 2) * chunk : (r % 2 + 1) * chunk]
                for side in order:
                    side.send(part)
        result: dict[str, Any] = {side.name: side.summary() for side in sides}
    result["b_over_a"] = {
        key: round(result["b"][key] / result["a"][key], 3)
        for key in ("images_per_s", "server_main_cpu_ms_per_image", "engine_workers_cpu_ms_per_image")
    }
    result["other_load"] = other.summary()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faceset", type=Path)
    parser.add_argument("--a", type=Path, required=True, help="src directory of version A")
    parser.add_argument("--b", type=Path, required=True, help="src directory of version B")
    parser.add_argument("--engine", default="opencv", choices=("opencv", "fusion", "dlib"))
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", required=True, help="What B changes, e.g. 'httptools'")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "identify-ab.json")
    args = parser.parse_args()
    report = {
        "label": args.label,
        "machine": machine(),
        "engine": args.engine,
        "a": str(args.a),
        "b": str(args.b),
        **measure(args.faceset, args.a, args.b, args.engine, args.probes, args.rounds, args.seed),
    }
    runs = json.loads(args.output.read_text()) if args.output.exists() else {}
    runs[args.label] = report
    args.output.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("a", "b", "b_over_a")}, indent=2))


if __name__ == "__main__":
    main()
