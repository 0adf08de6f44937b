"""Child processes of the bench: console scripts of this environment, their environment, timed runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

# The admin key a bench server is started with (FACEGATE_AUTH__BOOTSTRAP_KEY on its fresh, throwaway store).
BENCH_KEY = "facegate-bench-admin-key-not-a-secret"


def executable(name: str) -> str:
    """A console script of this environment (next to the running interpreter), else from PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"`{name}` is not installed in this environment (see bench/requirements.txt).")
    return found


def facegate_env(data_dir: Path, engine: str) -> dict[str, str]:
    """A facegate child's environment: a fresh data directory, the engine, a known admin key and no rate limit
    (the engine, not the limiter, is what a bench should run out of)."""
    env = dict(os.environ)
    env.update(
        {
            "FACEGATE_DATA_DIR": str(data_dir),
            "FACEGATE_ENGINE__TYPE": engine,
            "FACEGATE_AUTH__BOOTSTRAP_KEY": BENCH_KEY,
            "FACEGATE_RATE_LIMIT__DEFAULT": "",
            "COLUMNS": "200",
        }
    )
    return env


def timed_run(cmd: list[str], env: Mapping[str, str] | None = None) -> tuple[float, str, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout, proc.stderr
