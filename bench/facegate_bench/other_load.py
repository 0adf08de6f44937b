"""CPU time used by other processes, and stolen by the hypervisor, while a phase runs."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any


def process_times() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds used so far, command name), for every process readable in /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    result: dict[int, tuple[int, float, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may contain spaces; the fields after its closing parenthesis do not.
        fields = raw[raw.rfind(")") + 2 :].split()
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        result[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, name)
    return result


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds used so far by a server process and by its children (its engine workers), read together."""
    processes = process_times()
    main = processes[pid][1] if pid in processes else 0.0
    return main, sum(cpu for ppid, cpu, _ in processes.values() if ppid == pid)


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests, from /proc/stat (0 where unknown)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0
    except (OSError, ValueError):
        return 0.0


class OtherLoad:
    """CPU time used by processes that are not ours (not this process or its descendants) while a phase runs.

    Benchmarks on a shared machine are only as good as its quietness; this says how quiet it was. Processes that
    live less than one sampling interval are missed. Time stolen by the hypervisor (other virtual machines on the
    same host) is reported too.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ours: set[int] = {os.getpid()}
        self._last: dict[int, float] = {}
        self._seen_any = False
        self._started = 0.0
        self.other_cpu_seconds = 0.0
        self.by_name: dict[str, float] = {}
        self.wall_seconds = 0.0
        self.steal_seconds = 0.0

    def _sample(self) -> None:
        procs = process_times()
        grew = True
        while grew:  # descendants of ours are ours, however deep; once ours, always ours (orphans too)
            new = {pid for pid, (ppid, _, _) in procs.items() if ppid in self._ours and pid not in self._ours}
            self._ours |= new
            grew = bool(new)
        for pid, (_, cpu, name) in procs.items():
            # A process first seen after the first sample started during the phase: all its time counts.
            before = self._last.get(pid, 0.0 if self._seen_any else cpu)
            if pid not in self._ours and cpu > before:
                self.other_cpu_seconds += cpu - before
                self.by_name[name] = self.by_name.get(name, 0.0) + cpu - before
            self._last[pid] = cpu
        self._seen_any = True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> OtherLoad:
        if not Path("/proc/self/stat").is_file():
            return self
        self._sample()
        self.steal_seconds = -steal_seconds()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="other-load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        self.steal_seconds += steal_seconds()
        self.wall_seconds = time.perf_counter() - self._started

    def summary(self) -> dict[str, Any]:
        cores = self.other_cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0
        top = sorted(self.by_name.items(), key=lambda kv: kv[1], reverse=True)[:5]
        return {
            "other_processes_cpu_seconds": round(self.other_cpu_seconds, 2),
            "other_processes_cores": round(cores, 3),
            "top_other_processes": {name: round(cpu, 2) for name, cpu in top if cpu >= 0.05},
            "hypervisor_steal_cores": round(self.steal_seconds / self.wall_seconds, 3) if self.wall_seconds else 0.0,
        }
