"""Bulk enroll: the wall time of `facegate enroll <folder of people>`, with its start-up timed apart."""

from __future__ import annotations

import re
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from facegate_bench.processes import executable, facegate_env, timed_run

_ENROLLED = re.compile(r"Enrolled (\d+) new faces for (\d+) people from (\d+) photos")


def bulk_enroll(photos: Mapping[str, Sequence[Path]], engine: str, work: Path, runs: int) -> dict[str, Any]:
    """`facegate enroll <folder>` into a fresh data directory, `runs` times; start-up is timed separately as
    `facegate people list` on a fresh directory (import, migrations, engine workers, index), which does no enroll."""
    people = work / "people"
    if not people.exists():
        for identity, files in photos.items():
            folder = people / identity
            folder.mkdir(parents=True)
            for path in files:
                (folder / path.name).symlink_to(path.resolve())
    total = sum(len(files) for files in photos.values())
    exe = executable("facegate")
    enroll_seconds, startup_seconds = [], []
    enrolled: tuple[int, ...] = ()
    work.mkdir(parents=True, exist_ok=True)
    for _ in range(runs):
        fresh = Path(tempfile.mkdtemp(dir=work, prefix="startup-"))
        seconds, _, _ = timed_run([exe, "people", "list"], facegate_env(fresh, engine))
        startup_seconds.append(seconds)
        enroll_cmd = [exe, "enroll", str(people), "--engine", engine]
        fresh = Path(tempfile.mkdtemp(dir=work, prefix="enroll-"))
        seconds, out, _ = timed_run(enroll_cmd, facegate_env(fresh, engine))
        enroll_seconds.append(seconds)
        m = _ENROLLED.search(out)
        enrolled = tuple(int(g) for g in m.groups()) if m else ()
    wall = statistics.median(enroll_seconds)
    startup = statistics.median(startup_seconds)
    return {
        "command": f"facegate enroll PEOPLE_DIR --engine {engine}",
        "images": total,
        "people": len(photos),
        "faces_enrolled": enrolled[0] if enrolled else None,
        "runs": runs,
        "seconds": [round(s, 3) for s in enroll_seconds],
        "startup_seconds": [round(s, 3) for s in startup_seconds],
        "images_per_s": round(total / wall, 2),
        "images_per_s_excluding_startup": round(total / max(wall - startup, 1e-9), 2),
    }
