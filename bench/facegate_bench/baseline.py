"""The baseline: the `face_recognition` command line on the same split, timed and scored."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from facegate_bench.machine import package_version
from facegate_bench.processes import executable, timed_run
from facegate_bench.scoring import BASELINE_TOLERANCE, parse_face_recognition_output, score
from facegate_bench.split import Split

# The baseline is asked to print every known name with its distance (a tolerance no distance reaches), so that
# rank-1 can be scored; its decisions at the default tolerance are re-derived from the same distances.
BASELINE_LIST_ALL_TOLERANCE = 10.0


def run_baseline(split: Split, known_dir: Path, unknown_dir: Path, work: Path, cpus: int) -> dict[str, Any]:
    """`face_recognition --cpus N KNOWN UNKNOWN`, timed whole; its start-up plus gallery encoding is timed too,
    by a run against an empty probe folder, so that a probes-only rate can be given."""
    exe = executable("face_recognition")
    # Pool workers print from child processes; unbuffered output is not lost when they are terminated.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = [exe, "--cpus", str(cpus), "--show-distance", "true", "--tolerance", str(BASELINE_LIST_ALL_TOLERANCE)]
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    setup_seconds, _, _ = timed_run([*base, str(known_dir), str(empty)], env)
    cmd = [*base, str(known_dir), str(unknown_dir)]
    seconds, out, _ = timed_run(cmd, env)
    predictions = parse_face_recognition_output(out, BASELINE_TOLERANCE)
    gallery_warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    n = len(split.probes)
    probe_seconds = max(seconds - setup_seconds, 1e-9)
    return {
        "tool": f"face_recognition {package_version('face-recognition')} (dlib {package_version('dlib-bin')})",
        "command": " ".join(["face_recognition", *cmd[1:]]),
        "tolerance": BASELINE_TOLERANCE,
        "note": (
            f"--tolerance {BASELINE_LIST_ALL_TOLERANCE} only makes it print every known name with its distance "
            f"(rank-1 needs them); answers are the nearest name within the default {BASELINE_TOLERANCE}. "
            "It detects with HOG upsampled once, on probes shrunk to <= 1600 px and gallery photos at full size."
        ),
        "images": n,
        "seconds_total": round(seconds, 3),
        "images_per_s_total": round(n / seconds, 2),
        "startup_and_gallery_seconds": round(setup_seconds, 3),
        "images_per_s_probes_only": round(n / probe_seconds, 2),
        "gallery_warnings": gallery_warnings,
        "accuracy": score(split.probes, predictions),
    }
