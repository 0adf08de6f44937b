"""The machine, environment and code a run measured."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


def package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _command_output(cmd: list[str]) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _git(*args: str) -> str | None:
    """git in the checkout this harness runs from (bench/ is inside it); None outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return proc.stdout.rstrip()


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "uname": _command_output(["uname", "-a"]) or " ".join(platform.uname()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        # The code measured is the working tree: files changed since that commit are listed.
        "git_modified": None if status is None else [line[3:] for line in status.splitlines()],
        "packages": {
            p: package_version(p)
            for p in ("facegate", "opencv-python-headless", "dlib-bin", "face-recognition", "numpy", "httpx")
        },
        "facegate_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("FACEGATE_")},
    }
