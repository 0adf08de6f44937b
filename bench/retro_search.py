"""Retro-search on the calibration set: once a person is enrolled, how many of their earlier unknown sightings
does GET /api/v1/people/{id}/sightings find, and how many of other people's faces does it list?

    PYTHONPATH=bench .venv/bin/python bench/retro_search.py [--output bench/results/retro-search-calib.json]

Run from the repository root. Every calib photo's SFace descriptor (facegate's opencv engine, cached by
bench/calib_descriptors.py) is written to a fresh embedded store as an unknown face in match history (what
identify writes when nobody matches; no crops). Then, for every identity with two or more photos, the person is
enrolled from their first photo (or their first three, the `two_nearest` template at work) through the store's
own interface, `services.sightings.person_sightings` (the code behind the endpoint) is asked for their sightings,
and the person is deleted again. Their own other photos are the sightings to find; the enrolled photos' own
history rows are not counted. Counted at identify's threshold (what the endpoint lists) and at the stricter
relabelling bar (what FACEGATE_SIGHTINGS__RELABEL would name in history).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from calib_descriptors import CALIB, calib_descriptors
from facegate.services import sightings
from facegate.services.runtime import Runtime
from match_history import bench_runtime, enroll, unknown_matches


def history(rt: Runtime, vectors: np.ndarray) -> list[int]:
    return rt.store.add_matches(unknown_matches(rt.engine.info, vectors))


def measure(rt: Runtime, identity: np.ndarray, vectors: np.ndarray, ids: list[int], enrolled: int) -> dict[str, Any]:
    by_person: dict[str, list[int]] = {}
    for i, name in enumerate(identity):
        by_person.setdefault(str(name), []).append(i)
    bars = {"threshold": rt.engine.info.threshold, "relabel": sightings.relabel_distance(rt)}
    counts = {bar: {"own": 0, "found": 0, "false": 0, "people_with_false": 0} for bar in bars}
    people = 0
    for name, rows in sorted(by_person.items()):
        if len(rows) <= enrolled:
            continue
        people += 1
        person = enroll(rt, name, vectors[rows[:enrolled]])
        own = {ids[r] for r in rows[enrolled:]}
        skip = {ids[r] for r in rows[:enrolled]}
        for bar, distance in bars.items():
            page = sightings.person_sightings(rt, person, limit=100_000, threshold=distance)
            found = {item.match.id for item in page.items} - skip
            counts[bar]["own"] += len(own)
            counts[bar]["found"] += len(found & own)
            counts[bar]["false"] += len(found - own)
            counts[bar]["people_with_false"] += bool(found - own)
        rt.store.delete_person(person)
    return {
        "enrolled_photos": enrolled,
        "people": people,
        **{
            bar: {
                "distance": bars[bar],
                **c,
                "recall": round(c["found"] / max(1, c["own"]), 4),
                "false_per_person": round(c["false"] / max(1, people), 4),
            }
            for bar, c in counts.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("bench/results/retro-search-calib.json"))
    args = parser.parse_args()
    started = time.time()
    keys, identity, vectors = calib_descriptors()
    results = []
    with bench_runtime() as rt:
        ids = history(rt, vectors)
        for enrolled in (1, 3):
            row = measure(rt, identity, vectors, ids, enrolled)
            print(json.dumps(row))
            results.append(row)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {
        "what": "bench/retro_search.py: a person's earlier unknown sightings found once they are enrolled (calib)",
        "command": "PYTHONPATH=bench .venv/bin/python bench/retro_search.py",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": platform.platform(),
        "faceset": str(CALIB),
        "history_faces": len(keys),
        "identities": len(set(identity.tolist())),
        "engine": "opencv (SFace), cosine; person template two_nearest",
        "target": "recall >= 0.95 at identify's threshold",
        "seconds": round(time.time() - started, 1),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
