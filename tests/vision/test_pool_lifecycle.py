"""Engine workers die with the process that started them, even when it is killed with SIGKILL: orphans
(~300 MB each) would otherwise live on under PID 1, one more set after every restart of the service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

OPEN_A_POOL = textwrap.dedent(
    """
    import json, time
    from multiprocessing import resource_tracker
    from facegate.config import OpenCVEngineSettings
    from facegate.vision.pool import EnginePool

    if __name__ == "__main__":
        pool = EnginePool(OpenCVEngineSettings(), workers=1)
        pool.open()
        tracker = resource_tracker._resource_tracker._pid
        print(json.dumps({"workers": pool.worker_pids(), "tracker": tracker}), flush=True)
        time.sleep(120)
    """
)

# Two forked children, one guarded by the portable fallback only (no PR_SET_PDEATHSIG), one not guarded.
FORK_CHILDREN = textwrap.dedent(
    """
    import os, time
    from facegate.vision.pool import _die_with_parent

    parent = os.getpid()
    children = []
    for guarded in (True, False):
        pid = os.fork()
        if pid == 0:
            if guarded:
                _die_with_parent(parent, pdeathsig=False, poll_seconds=0.05)
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    print(*children, flush=True)
    time.sleep(60)
    """
)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for PID 1 to reap it holds no memory and counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _start(script: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the script printed nothing (exit code {process.poll()})"
    return process, line


def test_workers_and_resource_tracker_die_when_the_service_is_killed() -> None:
    process, line = _start(OPEN_A_POOL)
    started = json.loads(line)
    workers, tracker = started["workers"], started["tracker"]
    assert len(workers) == 1 and all(_alive(pid) for pid in workers)
    os.kill(process.pid, signal.SIGKILL)  # no clean-up runs: no atexit, no executor shutdown
    process.wait()
    assert _gone_within(workers, 5), f"engine workers {workers} outlived their parent"
    # multiprocessing's resource tracker exits once every holder of its pipe (parent and workers) is gone.
    assert _gone_within([tracker], 5), f"the resource tracker {tracker} outlived the service"


def test_the_fallback_watchdog_alone_ends_an_orphaned_worker() -> None:
    process, line = _start(FORK_CHILDREN)
    guarded, unguarded = (int(pid) for pid in line.split())
    try:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert _gone_within([guarded], 3), "the watchdog did not notice its parent was gone"
        assert _alive(unguarded)  # control: without the guard the orphan lives on
    finally:
        if _alive(unguarded):
            os.kill(unguarded, signal.SIGKILL)
