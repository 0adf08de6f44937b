"""POST /api/v1/search's history half at 100,000 history faces: brute force over pages of stored embeddings.

    PYTHONPATH=bench .venv/bin/python bench/search_history.py [--rows 100000] [--output FILE.json]

Run from the repository root. A fresh embedded store (SQLite) gets `--rows` match-history faces: real SFace
descriptors of the calib photos (bench/calib_descriptors.py) plus Gaussian perturbations (sigma 0.03 per
dimension, then L2-normalised), written through the store's own `add_matches` in batches, no crops. Then
`services.search.nearest_in_history` (the code behind the endpoint, one probe face, identify's threshold, limit
20) is timed, split into reading the pages from the store and the numpy distance work; at several history sizes.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from calib_descriptors import calib_descriptors
from facegate.config import OpenCVEngineSettings, Settings
from facegate.services import search
from facegate.services.runtime import Runtime
from facegate.store.base import NewMatch
from facegate.vision.pool import EnginePool

BATCH = 5000
REPEATS = 5


def fill(rt: Runtime, base: np.ndarray, count: int, rng: np.random.Generator) -> None:
    info = rt.engine.info
    now = datetime.now(UTC)
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        vectors = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.03, (n, base.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rt.store.add_matches(
            [
                NewMatch(
                    request_id=str(uuid.uuid4()),
                    source="bench",
                    created_at=now,
                    person_id=None,
                    distance=None,
                    confidence=None,
                    threshold=info.threshold,
                    left=0,
                    top=0,
                    width=100,
                    height=100,
                    quality=1.0,
                    engine=info.name,
                    model_version=info.model_version,
                    candidates=[],
                    crop_key=None,
                    embedding=v.astype("<f4").tobytes(),
                )
                for v in vectors
            ]
        )


def time_search(rt: Runtime, probe: np.ndarray) -> dict[str, Any]:
    info = rt.engine.info
    totals, reads = [], []
    for _ in range(REPEATS):
        started = time.perf_counter()
        found, searched = search.nearest_in_history(rt, [probe], threshold=info.threshold, limit=20)
        totals.append(time.perf_counter() - started)
        started = time.perf_counter()
        after = 0
        while page := rt.store.sightings(info.name, info.model_version, unknown_only=False, after_id=after):
            after = page[-1].match_id
        reads.append(time.perf_counter() - started)
    total, read = statistics.median(totals), statistics.median(reads)
    return {
        "searched": searched,
        "found": len(found[0]),
        "seconds_median": round(total, 3),
        "store_read_seconds_median": round(read, 3),
        "numpy_seconds_estimate": round(max(0.0, total - read), 3),
        "seconds_all": [round(t, 3) for t in totals],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--output", type=Path, default=Path("bench/results/search-history.json"))
    args = parser.parse_args()
    _, _, vectors = calib_descriptors()
    rng = np.random.default_rng(7)
    pool = EnginePool(OpenCVEngineSettings(), workers=1)
    pool.open()
    results = []
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            rt = Runtime(Settings(data_dir=Path(data_dir), workers=1), engine=pool)
            rt.open()
            try:
                filled = 0
                for size in sorted({10_000, args.rows // 2, args.rows}):
                    started = time.perf_counter()
                    fill(rt, vectors, size - filled, rng)
                    filled = size
                    row = {"rows": size, "fill_seconds": round(time.perf_counter() - started, 1)}
                    row |= time_search(rt, vectors[0])
                    print(json.dumps(row))
                    results.append(row)
            finally:
                rt.close()
    finally:
        pool.close()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = Path("/proc/loadavg").read_text().split()[:3]
    report = {
        "what": "bench/search_history.py: the history half of POST /api/v1/search, brute force (SQLite store)",
        "command": f"PYTHONPATH=bench .venv/bin/python bench/search_history.py --rows {args.rows}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": platform.platform(),
        "load_average_at_end": load,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
