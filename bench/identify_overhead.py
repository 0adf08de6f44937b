"""Where the CPU of identify over HTTP goes: the server's own process, its engine workers and the client, per photo,
beside the bare engine's rate on the same probes (issue 9: identify over HTTP at >= 90% of the bare engine).

    PYTHONPATH=bench .venv/bin/python bench/identify_overhead.py ../shared/faces/calib --engine opencv \\
        --probes 400 --label after [--py-spy /path/to/py-spy]

A `facegate serve` child (fresh data directory) enrolls the seeded gallery of the face set over HTTP, as the
harness does (facegate_bench), then 2 client threads send the probes once to warm up and once timed. CPU
seconds are read from /proc for the server's main process and for its engine workers, and from this process
for the client threads, over exactly the timed pass. CPU per photo is a figure a loaded machine moves much
less than images/s. The bare engine (facegate_bench.ceiling) then runs on the same probes. With `--py-spy`, a
third pass is sampled (100 Hz, every process of the server) and the top functions of the main process are
written to the report. Other processes' CPU during each phase is recorded.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from facegate.services.evaluation import load_faceset
from facegate_bench.ceiling import bare_engine_identify
from facegate_bench.client import enroll_gallery, identify
from facegate_bench.latency import identify_latency, latency_image
from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad
from facegate_bench.processes import BENCH_KEY
from facegate_bench.quiet import cpu_canary_ms
from facegate_bench.server import running_server
from facegate_bench.split import Probe, split_gallery
from facegate_bench.throughput import fused_faces

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
CLIENTS = 2
_FRAME_DIR = re.compile(r"\((?:[^()]*/)")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cpu_now(server: int, workers: list[int]) -> dict[str, float]:
    return {
        "server_main": _cpu_seconds(server),
        "engine_workers": sum(_cpu_seconds(w) for w in workers),
        "client": time.process_time(),
    }


def _send_all(client: httpx.Client, payload: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=CLIENTS) as threads:
        return list(threads.map(lambda item: identify(client, *item), payload))


def _top_functions(raw: Path, pid: int, limit: int = 25) -> dict[str, Any]:
    """From py-spy's raw (collapsed) output: the share of the main process's samples in which each function
    is on the stack (inclusive), and the leaf functions (exclusive)."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")
        # With --subprocesses, a worker's stacks start with the server's frame and then the worker's own.
        if not frames[0].startswith(f"process {pid}:") or (len(frames) > 1 and frames[1].startswith("process ")):
            continue
        count = int(count_text)
        total += count
        names = [_FRAME_DIR.sub("(", f) for f in frames[1:]]  # "fn (pkg/mod.py:12)" -> "fn (mod.py:12)"
        for name in set(names):
            inclusive[name] += count
        if names:
            leaf[names[-1]] += count
    share = {k: round(v / total, 3) for k, v in inclusive.most_common(limit)} if total else {}
    leaves = {k: round(v / total, 3) for k, v in leaf.most_common(limit)} if total else {}
    return {"samples": total, "inclusive": share, "exclusive": leaves}


def measure(
    faceset: Path, engine: str, probes: int, seed: int, py_spy: Path | None, latency: int, work: Path
) -> dict[str, Any]:
    photos = load_faceset(faceset.resolve()).photos
    split = split_gallery(photos, seed)
    chosen: list[Probe] = sorted(
        random.Random(seed).sample(split.probes, min(probes, len(split.probes))), key=lambda p: p.filename
    )
    payload = [(p.filename, p.path.read_bytes()) for p in chosen]
    report: dict[str, Any] = {"engine": engine, "probes": len(chosen), "clients": CLIENTS}
    with running_server(work / "data", engine, work / "serve.log") as server:
        workers = _children(server.process.pid)
        limits = httpx.Limits(max_connections=CLIENTS + 2)
        headers = {"X-API-Key": BENCH_KEY}
        with httpx.Client(base_url=server.url, timeout=120.0, limits=limits, headers=headers) as client:
            report["gallery"] = enroll_gallery(client, split.gallery)
            bodies = _send_all(client, payload)  # warm-up pass; also says which faces were fused
            canary = cpu_canary_ms()
            with OtherLoad() as other:
                before = _cpu_now(server.process.pid, workers)
                started = time.perf_counter()
                _send_all(client, payload)
                wall = time.perf_counter() - started
                after = _cpu_now(server.process.pid, workers)
            cpu = {k: after[k] - before[k] for k in before}
            report["http"] = {
                "images_per_s": round(len(payload) / wall, 2),
                "wall_seconds": round(wall, 3),
                "cpu_ms_per_image": {k: round(1000 * v / len(payload), 2) for k, v in cpu.items()},
                "cpu_ms_per_image_total": round(1000 * sum(cpu.values()) / len(payload), 2),
                "cores_busy": round(sum(cpu.values()) / wall, 3),
                "faces_decided_by_fusion": sum(
                    face.get("decided_by") == "fusion" for body in bodies for face in body["faces"]
                ),
                "other_load": other.summary(),
                "cpu_canary_ms_before_after": [canary, cpu_canary_ms()],
            }
            if latency:
                # The harness's latency phase: one 640x480 face (made from the dev set; gallery photo if absent).
                dev = faceset.resolve().parent / "dev"
                image, source = latency_image(dev, next(iter(split.gallery.values())))
                with OtherLoad() as other:
                    report["latency"] = identify_latency(client, image, requests=latency)
                faces = identify(client, "latency.jpg", image)["faces"]
                report["latency"].update(
                    image=f"{source} fitted and padded to 640x480",
                    decided_by=faces[0]["decided_by"] if faces else None,
                    other_load=other.summary(),
                )
            if py_spy is not None:
                raw = work / "py-spy.txt"
                spy = subprocess.Popen(
                    [
                        *(str(py_spy), "record", "--pid", str(server.process.pid), "--subprocesses", "--rate", "100"),
                        *("--format", "raw", "--output", str(raw), "--nonblocking"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)
                _send_all(client, payload)
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
                report["py_spy_main_process"] = _top_functions(raw, server.process.pid)
                report["py_spy_raw"] = str(raw)
    fused = fused_faces(chosen, bodies)
    with OtherLoad() as other:
        bare = bare_engine_identify(chosen, engine, processes=os.cpu_count() or 1, passes=1, fused_faces=fused)
    report["bare_engine"] = {"images_per_s": bare["images_per_s"], "other_load": other.summary()}
    report["share_of_ceiling"] = round(report["http"]["images_per_s"] / bare["images_per_s"], 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faceset", type=Path)
    parser.add_argument("--engine", default="opencv", choices=("opencv", "fusion", "dlib"))
    parser.add_argument("--probes", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", required=True, help="What code this run measured, e.g. before / after")
    parser.add_argument("--latency", type=int, default=0, help="Also this many sequential latency requests")
    parser.add_argument("--py-spy", type=Path, default=None, help="py-spy executable: also sample a third pass")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "identify-overhead.json")
    args = parser.parse_args()

    keep = Path(tempfile.mkdtemp(prefix="identify-overhead-"))
    report = measure(args.faceset, args.engine, args.probes, args.seed, args.py_spy, args.latency, keep)
    report["machine"] = machine()
    runs: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    runs[f"{args.label} {args.engine} {args.faceset.name}"] = report
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
