"""What each spawned engine worker pays for re-running the parent's main module (issue 9, CLI start-up).

    .venv/bin/python bench/worker_main_rerun.py [--old-script PATH]

multiprocessing's spawn runs the parent's main module again in every child it starts, as `__mp_main__`
(`runpy.run_path(path, run_name="__mp_main__")`). For `facegate` commands the main module is the console
script. This times that step alone in a fresh interpreter, as CPU seconds (user + system, which a loaded
machine moves far less than wall time), median of `--runs`: for the installed script, for an older script
given with `--old-script` (the wrapper generated for `facegate = "facegate.cli:app"`, which imported the whole
CLI at its top), for an empty `python -c pass` (the floor), and for the imports a worker needs anyway
(`facegate.vision.pool`, which its tasks live in). Writes bench/results/worker-main-rerun.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from facegate_bench.machine import machine
from facegate_bench.other_load import OtherLoad

REPO = Path(__file__).resolve().parents[1]


def _rerun(script: Path) -> str:
    return f"import runpy; runpy.run_path({str(script)!r}, run_name='__mp_main__')"


def _cpu_seconds(code: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, default=Path(sys.executable).with_name("facegate"))
    parser.add_argument("--old-script", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "worker-main-rerun.json")
    args = parser.parse_args()

    variants = {"python -c pass (the floor)": "pass", f"installed script re-run ({args.script})": _rerun(args.script)}
    if args.old_script is not None:
        variants[f"old script re-run ({args.old_script})"] = _rerun(args.old_script)
    variants["a worker's own imports (facegate.vision.pool)"] = "import facegate.vision.pool"
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with OtherLoad() as other:
        for _ in range(args.runs):  # interleaved: a noisy moment spreads over every variant
            for name, code in variants.items():
                samples[name].append(_cpu_seconds(code))
    report: dict[str, Any] = {
        "what": "CPU seconds (user + system) of a fresh interpreter doing only this, median of the runs",
        "runs": args.runs,
        "cpu_ms_median": {name: round(1000 * statistics.median(v), 1) for name, v in samples.items()},
        "cpu_ms_runs": {name: [round(1000 * s, 1) for s in v] for name, v in samples.items()},
        "other_load": other.summary(),
        "machine": machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, ms in report["cpu_ms_median"].items():
        print(f"{ms:8.1f} ms  {name}")


if __name__ == "__main__":
    main()
