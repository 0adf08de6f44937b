"""Mixed load on a real `facegate serve`: many concurrent clients, over loopback, for a fixed time.

    .venv/bin/python bench/load.py [--clients 50 --seconds 60] [--output bench/results/load-<date>.json]
    .venv/bin/python bench/load.py --table bench/results/load-<date>.json     # the Markdown table of a run

Run from the repository root. The server is the embedded default (SQLite + files + in-process hnsw) in a fresh
temporary data directory, FACEGATE_WORKERS=2, its per-key rate limit raised (FACEGATE_RATE_LIMIT__DEFAULT,
100000/minute) so that the engine, not the limiter, is what runs out; every other setting is the default (engine
queue 8 = max(8, 4 x workers), engine timeout 30 s, 20 MiB bodies).

Before the clock starts, one photo of every dev identity is enrolled (the gallery identify searches). Then
`--clients` asyncio tasks, each in a closed loop, pick an operation at random by weight: identify a dev photo
(identity, multi-face and no-face photos), enroll a dev photo as a new person, list people, list match history,
or delete a person this load enrolled (an enroll instead while there is none). A client that gets 503 or 429 waits
what Retry-After says (at most 5 s), as a well-behaved client would, then goes on. Requests still in flight when
the time is up are waited for and counted.

Recorded per operation: count, status counts, transport errors, p50/p99 latency of successes and, separately, of
refusals (429 and 503: past capacity the service must refuse quickly, not time out), throughput of successes.
Beside the clients, GET /ready and GET /health are timed every 0.5 s on a connection of their own. Also recorded:
the server's process group peak memory (sum of VmRSS), the CPU other processes used meanwhile (the machine is
shared), /proc/loadavg, and the machine, date, commit and settings.

The dev face set is ../shared/faces/dev (or $FACEGATE_DEV_FACES).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad

REPO = Path(__file__).resolve().parents[1]
DEV = Path(os.environ.get("FACEGATE_DEV_FACES", REPO.parent / "shared" / "faces" / "dev"))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
WORKERS = 2
RATE_LIMIT = "100000/minute"
# Operation -> weight. Identify is what a deployment mostly does.
MIX = {"identify": 80, "enroll": 8, "people_list": 5, "matches_list": 5, "delete_person": 2}
REQUEST_TIMEOUT = 60.0  # above the engine's own 30 s timeout: a slow answer is measured, not cut off
MAX_BACKOFF = 5.0
READY_INTERVAL = 0.5


# -- the server -------------------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    key: str
    start_seconds: float
    log_path: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(data_dir: Path, log_path: Path) -> Iterator[Server]:
    """`facegate serve` in its own process group (so its engine workers are measured and stopped with it)."""
    key = "fg_load-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env |= {
        "FACEGATE_DATA_DIR": str(data_dir),
        "FACEGATE_WORKERS": str(WORKERS),
        "FACEGATE_RATE_LIMIT__DEFAULT": RATE_LIMIT,
        "FACEGATE_AUTH__BOOTSTRAP_KEY": key,
        "FACEGATE_LOG_LEVEL": "warning",  # an access log line per request would cost the server CPU
    }
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("facegate")), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=url, timeout=5.0) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"facegate serve exited ({process.returncode}); see {log_path}")
                if time.perf_counter() - started > 300:
                    raise RuntimeError(f"facegate serve was not ready within 300 s; see {log_path}")
                with suppress(httpx.TransportError):
                    if client.get("/ready").status_code == 200:
                        break
                time.sleep(0.1)
        yield Server(url, process, key, time.perf_counter() - started, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
        process.wait()


class GroupMemory:
    """Peak of the summed VmRSS of a process group, sampled every 0.25 s."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak_mb = 0.0
        self.start_mb = self.now_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now_mb(self) -> float:
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                if int(stat[stat.rfind(")") + 2 :].split()[2]) != self.pgid:
                    continue
                for line in Path(entry.path, "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except (OSError, ValueError):
                continue
        return total / 1024

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_mb = max(self.peak_mb, self.now_mb())

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the server process itself and by the rest of its group (engine workers)."""
        tick = os.sysconf("SC_CLK_TCK")
        split = {"server": 0.0, "workers": 0.0}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) != self.pgid:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / tick
            split["server" if int(entry.name) == self.pgid else "workers"] += cpu
        return split

    def close(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        end = self.now_mb()
        return {"start_mb": round(self.start_mb), "peak_mb": round(max(self.peak_mb, end)), "end_mb": round(end)}


# -- the photos ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    data: bytes
    mime: str


def _photo(path: Path) -> Photo:
    return Photo(f"{path.parent.name}-{path.name}", path.read_bytes(), MIME.get(path.suffix.lower(), "image/jpeg"))


def dev_photos(dev: Path) -> tuple[dict[str, list[Photo]], list[Photo]]:
    """identity -> its photos (from identities.csv), and the extra identify probes (multi-face, no-face)."""
    identities: dict[str, list[Photo]] = {}
    with (dev / "identities.csv").open() as fh:
        for row in csv.DictReader(fh):
            folder = dev / row["identity"]
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            identities[row["identity"]] = [_photo(p) for p in paths]
    extra = [
        _photo(p)
        for sub in ("multi", "noface")
        if (dev / sub).is_dir()
        for p in sorted((dev / sub).iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    return identities, extra


# -- the load -----------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    op: str
    status: int | None  # None: transport error
    seconds: float
    error: str = ""  # the error code of a 4xx/5xx, or the transport error's type


@dataclass
class LoadState:
    deadline: float
    rng: random.Random
    identify_photos: list[Photo]
    enroll_photos: list[Photo]
    samples: list[Sample] = field(default_factory=list)
    deletable: list[str] = field(default_factory=list)  # people this load enrolled
    enrolled: int = 0
    backoff_seconds: float = 0.0


def _error_code(response: httpx.Response) -> str:
    if response.status_code < 400:
        return ""
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"non-json:{response.headers.get('content-type', '')}"


async def one_request(client: httpx.AsyncClient, state: LoadState, op: str) -> httpx.Response:
    rng = state.rng
    if op == "identify":
        photo = rng.choice(state.identify_photos)
        return await client.post("/api/v1/identify", files={"image": (photo.name, photo.data, photo.mime)})
    if op == "enroll":
        photo = rng.choice(state.enroll_photos)
        state.enrolled += 1
        response = await client.post(
            "/api/v1/enroll",
            data={"name": f"load-{state.enrolled}"},
            files={"image": (photo.name, photo.data, photo.mime)},
        )
        if response.status_code == 201:
            state.deletable.append(response.json()["person"]["id"])
        return response
    if op == "people_list":
        return await client.get("/api/v1/people", params={"limit": 50, "offset": rng.randrange(0, 40)})
    if op == "matches_list":
        return await client.get("/api/v1/matches", params={"limit": 50})
    if op == "delete_person":
        person_id = state.deletable.pop(rng.randrange(len(state.deletable)))
        return await client.delete(f"/api/v1/people/{person_id}")
    raise ValueError(op)


async def client_loop(client: httpx.AsyncClient, state: LoadState) -> None:
    ops, weights = list(MIX), list(MIX.values())
    while time.monotonic() < state.deadline:
        op = state.rng.choices(ops, weights)[0]
        if op == "delete_person" and not state.deletable:
            op = "enroll"
        started = time.monotonic()
        try:
            response = await one_request(client, state, op)
        except httpx.TransportError as exc:
            state.samples.append(Sample(op, None, time.monotonic() - started, type(exc).__name__))
            await asyncio.sleep(0.1)
            continue
        state.samples.append(Sample(op, response.status_code, time.monotonic() - started, _error_code(response)))
        if response.status_code in (429, 503):
            wait = min(MAX_BACKOFF, float(response.headers.get("Retry-After", "1")))
            state.backoff_seconds += wait
            await asyncio.sleep(wait)


Probes = dict[str, list[tuple[int | None, float]]]


async def probe_loop(url: str, deadline: float, out: Probes) -> None:
    """GET /ready, then GET /health (nothing but the HTTP stack and a threadpool hop: it tells a slow readiness
    check from a slow server), every READY_INTERVAL on a connection of their own."""
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as client:
        while time.monotonic() < deadline:
            round_started = time.monotonic()
            for path in ("/ready", "/health"):
                started = time.monotonic()
                try:
                    status: int | None = (await client.get(path)).status_code
                except httpx.TransportError:
                    status = None
                out.setdefault(path, []).append((status, time.monotonic() - started))
            await asyncio.sleep(max(0.0, READY_INTERVAL - (time.monotonic() - round_started)))


async def run_load(server: Server, clients: int, seconds: float, state: LoadState) -> tuple[float, Probes]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    probes: Probes = {}
    async with httpx.AsyncClient(
        base_url=server.url, timeout=REQUEST_TIMEOUT, limits=limits, headers={"X-API-Key": server.key}
    ) as client:
        started = time.monotonic()
        state.deadline = started + seconds
        await asyncio.gather(
            probe_loop(server.url, state.deadline, probes), *(client_loop(client, state) for _ in range(clients))
        )
        return time.monotonic() - started, probes


def enroll_gallery(server: Server, identities: dict[str, list[Photo]]) -> dict[str, Any]:
    """One photo of every identity, sequentially, retrying a busy engine."""
    enrolled, failed = 0, {}
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT, headers={"X-API-Key": server.key}) as client:
        for identity, photos in identities.items():
            photo = photos[0]
            for _ in range(20):
                response = client.post(
                    "/api/v1/enroll", data={"name": identity}, files={"image": (photo.name, photo.data, photo.mime)}
                )
                if response.status_code != 503:
                    break
                time.sleep(1)
            if response.status_code == 201:
                enrolled += 1
            else:
                failed[identity] = f"{response.status_code} {_error_code(response)}"
    return {"enrolled": enrolled, "failed": failed}


# -- the figures --------------------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50_ms": round(1000 * statistics.median(ordered), 1), "p99_ms": at(0.99), "max_ms": at(1.0)}


def summarize(samples: list[Sample], wall: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for op in [*MIX, "all"]:
        mine = [s for s in samples if op in ("all", s.op)]
        ok = [s for s in mine if s.status is not None and s.status < 400]
        refused = [s for s in mine if s.status in (429, 503)]
        result[op] = {
            "count": len(mine),
            "statuses": dict(sorted(Counter(str(s.status) for s in mine if s.status is not None).items())),
            "error_codes": dict(sorted(Counter(s.error for s in mine if s.error and s.status is not None).items())),
            "transport_errors": dict(Counter(s.error for s in mine if s.status is None)),
            "server_errors_5xx_other_than_busy": sum(
                1 for s in mine if s.status is not None and s.status >= 500 and s.error != "engine_busy"
            ),
            "success": {**percentiles([s.seconds for s in ok]), "per_second": round(len(ok) / wall, 2)},
            "refused_429_503": percentiles([s.seconds for s in refused]),
        }
    return result


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| operation | requests | statuses | success p50 / p99 ms | successes/s | refusals (429/503) p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for op, r in report["operations"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        if r["transport_errors"]:
            statuses += ", transport errors: " + ", ".join(f"{k} {v}" for k, v in r["transport_errors"].items())
        ok, ref = r["success"], r["refused_429_503"]
        refusals = "" if ref["p50_ms"] is None else f"{ref['p50_ms']} / {ref['p99_ms']}"
        lines.append(
            f"| {op} | {r['count']} | {statuses} | {ok['p50_ms']} / {ok['p99_ms']} | {ok['per_second']} | {refusals} |"
        )
    for path, probe in report["probes"].items():
        lines.append(
            f"| GET {path} (every {READY_INTERVAL} s, own connection) | {probe['count']} | "
            f"{', '.join(f'{k}: {v}' for k, v in probe['statuses'].items())} | "
            f"{probe['latency']['p50_ms']} / {probe['latency']['p99_ms']} (max {probe['latency']['max_ms']}) | | |"
        )
    return "\n".join(lines)


def ram_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--output", type=Path, default=None, help="default: bench/results/load-<UTC date>.json")
    parser.add_argument("--table", type=Path, default=None, help="only print the table of a results file")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return
    output = args.output or REPO / "bench" / "results" / f"load-{datetime.now(UTC):%Y-%m-%d}.json"

    identities, extra = dev_photos(args.dev)
    enroll_photos = [p for photos in identities.values() for p in photos]
    state = LoadState(0.0, random.Random(args.seed), enroll_photos + extra, enroll_photos)
    root = Path(tempfile.mkdtemp(prefix="facegate-load-"))
    try:
        with running_server(root, root / "server.log") as server:
            print(f"server ready in {server.start_seconds:.1f} s; enrolling the gallery", flush=True)
            gallery = enroll_gallery(server, identities)
            memory = GroupMemory(server.process.pid)
            loadavg_before = Path("/proc/loadavg").read_text().split()[:3]
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu_before = memory.cpu_seconds()
            print(f"{args.clients} clients for {args.seconds:g} s; load average {' '.join(loadavg_before)}", flush=True)
            with OtherLoad() as others:
                wall, probes = asyncio.run(run_load(server, args.clients, args.seconds, state))
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            server_cpu_after = memory.cpu_seconds()
            loadavg_after = Path("/proc/loadavg").read_text().split()[:3]
            memory_figures = memory.close()
            log_tail = server.log_path.read_text(errors="replace")[-3000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    own_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    info = machine()
    report: dict[str, Any] = {
        "benchmark": "bench/load.py",
        "date": info["date"],
        "machine": {
            "cpu": info["cpu"],
            "cores": info["cores"],
            "ram_gib": ram_total_gib(),
            "python": info["python"],
            "uname": info["uname"],
        },
        "git_commit": info["git_commit"],
        "git_modified": info["git_modified"],
        "settings": {
            "clients": args.clients,
            "seconds": args.seconds,
            "seed": args.seed,
            "mix_weights": MIX,
            "server": {
                "FACEGATE_WORKERS": WORKERS,
                "FACEGATE_RATE_LIMIT__DEFAULT": RATE_LIMIT,
                "store": "embedded default: SQLite + files + hnsw, fresh data directory",
                "engine": "opencv (default)",
                "other settings": "defaults (engine queue max(8, 4 x workers) = 8, engine timeout 30 s)",
            },
            "client": "httpx AsyncClient, one connection per client, loopback; 429/503 wait Retry-After (<= 5 s)",
            "dev_photos": {
                "identities": len(identities),
                "identity_photos": len(enroll_photos),
                "extra_identify_photos": len(extra),
            },
        },
        "server_start_seconds": round(server.start_seconds, 2),
        "gallery": gallery,
        "wall_seconds": round(wall, 2),
        "operations": summarize(state.samples, wall),
        "probes": {
            path: {
                "count": len(got),
                "statuses": dict(Counter(str(st) for st, _ in got)),
                "latency": percentiles([seconds for st, seconds in got if st is not None]),
            }
            for path, got in probes.items()
        },
        "client_backoff_seconds_total": round(state.backoff_seconds, 1),
        "server_memory": memory_figures,
        "machine_load": {
            "loadavg_before": loadavg_before,
            "loadavg_after": loadavg_after,
            "load_generator_cores": round(own_cpu / wall, 3),
            # The `facegate serve` process (HTTP, multipart parsing, store, index) and its engine workers.
            "server_process_cores": round((server_cpu_after["server"] - server_cpu_before["server"]) / wall, 3),
            "engine_worker_cores": round((server_cpu_after["workers"] - server_cpu_before["workers"]) / wall, 3),
            **others.summary(),
        },
        "server_log_tail": log_tail,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(json.dumps({k: report[k] for k in ("server_memory", "machine_load", "wall_seconds")}, indent=2))
    print(f"written {output}")


if __name__ == "__main__":
    main()
