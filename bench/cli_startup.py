"""Start-up time of the store-only commands: `facegate people list|show|rename|delete` and `keys list|create|revoke`.

    nice -n 5 .venv/bin/python bench/cli_startup.py --label before   # on the code before the change
    nice -n 5 .venv/bin/python bench/cli_startup.py --label after    # ... and after it

Run from the repository root. A fresh data directory gets 3 people enrolled with `facegate enroll` (from the dev
face set) and one API key. Every command then runs as a fresh `facegate` subprocess, each run on its own copy of
that data directory (the copy is not timed), so that `delete`, `rename` and `revoke` always find what they act
on. The configuration is the default one (FACEGATE_* variables other than the data directory are removed from
the environment): the `fusion` engine and one worker per core. Runs are interleaved (run 1 of every command,
then run 2, ...) so that a noisy moment on a shared machine spreads over all commands; the median of `--runs`
is reported. `facegate --help` is timed too: Python start-up and imports, the floor of every command.

The JSON at `--output` keeps the figures of the other label, so that `before` and `after` end up side by side.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from facegate.config import Settings
from facegate.store.factory import build_repository

REPO = Path(__file__).resolve().parents[1]
PEOPLE = ("barack_obama", "colin_powell", "george_w_bush")


def dev_faces() -> Path:
    """FACEGATE_DEV_FACES, else ../shared/faces/dev beside the checkout, else the workplace's copy (as the tests)."""
    configured = os.environ.get("FACEGATE_DEV_FACES")
    if configured:
        return Path(configured)
    beside = REPO.parent / "shared" / "faces" / "dev"
    return beside if beside.is_dir() else Path("/work/shared/faces/dev")


def machine() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    return f"unknown, {os.cpu_count()} cores"


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env["FACEGATE_DATA_DIR"] = str(data_dir)
    return env


def facegate(exe: Path, data_dir: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([str(exe), *args], env=environment(data_dir), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"facegate {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def prepare(exe: Path, faces: Path, root: Path) -> tuple[Path, str, str]:
    """A data directory with 3 enrolled people and one key; the id of one person and of the key."""
    folder = root / "people"
    for name in PEOPLE:
        (folder / name).mkdir(parents=True)
        for photo in sorted((faces / name).iterdir()):
            (folder / name / photo.name).symlink_to(photo.resolve())
    data = root / "pristine"
    facegate(exe, data, "enroll", str(folder))
    facegate(exe, data, "keys", "create", "--name", "bench", "--scope", "read")
    store = build_repository(Settings(data_dir=data))
    store.open()
    try:
        people, total = store.list_people(limit=10, offset=0, name=None)
        keys = store.keys.list_keys()
    finally:
        store.close()
    if total != len(PEOPLE) or len(keys) != 1:
        raise SystemExit(f"expected {len(PEOPLE)} people and 1 key, found {total} and {len(keys)}")
    return data, people[0].id, keys[0].id


def commands(person: str, key: str) -> dict[str, list[str]]:
    return {
        "facegate --help": ["--help"],
        "people list": ["people", "list"],
        "people show ID": ["people", "show", person],
        "people rename ID NAME": ["people", "rename", person, "Renamed Person"],
        "people delete ID": ["people", "delete", person, "--yes"],
        "keys list": ["keys", "list"],
        "keys create --name x --scope read": ["keys", "create", "--name", "x", "--scope", "read"],
        "keys revoke ID": ["keys", "revoke", key],
    }


def measure(exe: Path, faces: Path, runs: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        root = Path(tmp)
        pristine, person, key = prepare(exe, faces, root)
        todo = commands(person, key)
        times: dict[str, list[float]] = {name: [] for name in todo}
        for run in range(runs):
            for name, args in todo.items():
                work = root / "work"
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(pristine, work, symlinks=True)
                elapsed, _ = facegate(exe, work, *args)
                times[name].append(elapsed)
                print(f"run {run + 1}/{runs} {name}: {elapsed:.2f}s", file=sys.stderr)
    settings = Settings(data_dir=pristine)
    config = {"engine": settings.engine.type, "workers": settings.worker_count, "index": settings.index.type}
    return times, config


def git_head() -> str:
    git = ["git", "rev-parse", "--short", "HEAD"]
    return subprocess.run(git, cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", choices=("before", "after"), required=True)
    parser.add_argument("--faces", type=Path, default=dev_faces())
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--facegate", type=Path, default=Path(sys.executable).parent / "facegate")
    parser.add_argument("--note", default="", help="What code this label measured (default: the HEAD commit)")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results" / "cli-startup.json")
    args = parser.parse_args()

    times, config = measure(args.facegate, args.faces, args.runs)
    report: dict[str, Any] = json.loads(args.output.read_text()) if args.output.exists() else {}
    report.update(
        {
            "machine": machine(),
            "runs": args.runs,
            "setup": f"{len(PEOPLE)} people enrolled from {args.faces.name} ({', '.join(PEOPLE)}), 1 API key; "
            "each run a fresh subprocess on a fresh copy of that data directory",
            "config": config,
        }
    )
    report.setdefault("code", {})[args.label] = {
        "date": datetime.date.today().isoformat(),
        "commit": args.note or git_head(),
    }
    results = report.setdefault("seconds_median", {})
    for name, values in times.items():
        results.setdefault(name, {})[args.label] = round(statistics.median(values), 3)
        results[name].setdefault("runs", {})[args.label] = [round(v, 3) for v in values]
    report["date"] = datetime.date.today().isoformat()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    for name, row in results.items():
        print(f"{name:40} before {row.get('before', '-')!s:>8}  after {row.get('after', '-')!s:>8}")


if __name__ == "__main__":
    main()
