"""Runs the streams this process owns, one thread each, and reports their status.

A control thread looks at the store every `poll_seconds` (at once when woken: a stream added or removed here, the
set of workers changed): it starts the streams it owns and is not running (at most `max_streams`; the rest wait),
stops those removed or now owned by another worker, restarts a failed one after a backoff that doubles from
`restart_initial_seconds` to `restart_max_seconds`, and reports every owned stream's status every
`status_seconds` (a row in the store, so any API replica can show it). An ended file (not looped) stays ended
until the process restarts. Which streams a process owns is decided elsewhere (`share`): all of them in the
embedded server, a share in each `facegate worker` (stream.worker). What runs for a stream is decided elsewhere
too (`runner`): the whole pipeline, or one half of it in a split deployment (stream.relay).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from facegate.services import streams as streams_service
from facegate.services.runtime import Runtime, StoreRuntime
from facegate.store.base import StreamRow, StreamStatus
from facegate.stream.pipeline import Pipeline, StreamOptions, StreamStats

log = logging.getLogger(__name__)

# How long closing waits for each pipeline thread to notice its stop (a frame read or an engine call).
JOIN_SECONDS = 10.0


def default_worker_id() -> str:
    """host-pid-random: unique per process, readable in the streams' `worker` field. KV keys allow no dots."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:60] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class StreamRunner(Protocol):
    """What runs one stream in a thread: a `Pipeline`, or half of one (stream.relay)."""

    @property
    def name(self) -> str: ...

    def run(self, stop: threading.Event) -> None:
        """Until the source ends or `stop` is set; raises when the source cannot be opened."""
        ...

    def stats(self) -> StreamStats: ...

    def latest_frame(self) -> bytes | None: ...


RunnerFactory = Callable[[StreamRow, StreamOptions], StreamRunner]


def pipelines(rt: Runtime) -> RunnerFactory:
    """The whole pipeline of each stream in this process (the embedded server, `facegate worker --role all`)."""

    def start(row: StreamRow, options: StreamOptions) -> StreamRunner:
        return Pipeline(rt, stream_id=row.id, name=row.name, source=row.source, options=options)

    return start


@dataclass(frozen=True)
class Share:
    """The streams a process runs, of the enabled ones, and those it reports as waiting because no worker has a
    free slot for them (each reported by one worker)."""

    run: frozenset[str]
    waiting: frozenset[str] = frozenset()


def _everything(stream_ids: Sequence[str]) -> Share:
    return Share(frozenset(stream_ids))


@dataclass
class _Run:
    row: StreamRow
    pipeline: StreamRunner
    stop: threading.Event
    thread: threading.Thread
    started: float  # time.monotonic()
    error: str | None = None  # an exception the pipeline raised
    restart_at: float | None = None  # set once it failed: when to start it again
    delay: float = 0.0  # the backoff that restart_at used


class StreamManager:
    """The streams of one process. `live_status`, `latest_frame` and `wake` may be called from any thread
    (it is the `LiveStreams` the HTTP API reads)."""

    def __init__(
        self,
        rt: StoreRuntime,
        *,
        worker: str,
        runner: RunnerFactory,
        share: Callable[[Sequence[str]], Share] = _everything,
        report: Callable[[str, StreamStatus], bool] | None = None,
    ) -> None:
        """`share`: of the enabled streams' ids (oldest first), those this process runs. `report`: where each
        stream's status goes (default: its row in the store); False when the stream is gone."""
        self.rt = rt
        self.worker = worker
        self._runner = runner
        self._share = share
        self._report_status = report or (lambda sid, status: streams_service.report_status(self.rt, sid, status))
        self._settings = rt.settings.streams
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._waiting: dict[str, str] = {}  # stream id -> why it waits (not run here for want of a slot)
        self._stopping: list[_Run] = []  # stopped, their threads not yet finished
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported = 0.0

    # --- Lifecycle ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._control, name="facegate-streams", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop every pipeline and wait for their threads (bounded)."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)
        with self._lock:
            runs = [*self._runs.values(), *self._stopping]
            self._runs.clear()
            self._waiting.clear()
            self._stopping.clear()
        for run in runs:
            run.stop.set()
        deadline = time.monotonic() + JOIN_SECONDS
        for run in runs:
            run.thread.join(max(0.0, deadline - time.monotonic()))

    # --- LiveStreams ---

    def wake(self) -> None:
        self._wake.set()

    def live_status(self, stream_id: str) -> StreamStatus | None:
        with self._lock:
            run = self._runs.get(stream_id)
            if run is not None:
                return self._status(run)
            if stream_id in self._waiting:
                return self._waiting_status(self._waiting[stream_id])
        return None

    def latest_frame(self, stream_id: str) -> bytes | None:
        with self._lock:
            run = self._runs.get(stream_id)
        return run.pipeline.latest_frame() if run is not None else None

    def running(self) -> list[str]:
        """Ids of the streams whose pipelines this process runs now (not waiting, not stopping)."""
        with self._lock:
            return [sid for sid, run in self._runs.items() if run.thread.is_alive()]

    # --- The control loop ---

    def _control(self) -> None:
        while not self._closed.is_set():
            try:
                self._reconcile()
                if time.monotonic() - self._reported >= self._settings.status_seconds:
                    self._report()
            except Exception:  # the store may be briefly unreachable: keep the streams, retry at the next poll
                log.exception("stream manager: reconcile failed; retrying")
            self._wake.wait(self._settings.poll_seconds)
            self._wake.clear()

    def _reconcile(self) -> None:
        rows = [r for r in self.rt.store.streams.list_streams() if r.enabled]
        share = self._share([r.id for r in rows])
        wanted = {r.id: r for r in rows if r.id in share.run}
        now = time.monotonic()
        with self._lock:
            for sid, run in list(self._runs.items()):
                row = wanted.get(sid)
                if row is None or (row.source, row.options) != (run.row.source, run.row.options):
                    self._stop_locked(sid)
            self._reap_locked()
            for sid, run in list(self._runs.items()):
                if run.restart_at is not None and now >= run.restart_at:
                    log.info("stream %s: restarting after %.1f s", run.row.name, run.delay)
                    self._runs[sid] = self._start_locked(run.row, delay=run.delay)
            self._waiting = {sid: "no worker has a free stream slot" for sid in share.waiting}
            for sid, row in wanted.items():
                if sid in self._runs:
                    continue
                if self._active_locked() >= self._settings.max_streams:
                    self._waiting[sid] = (
                        f"every one of this process's {self._settings.max_streams} stream slots is busy"
                    )
                    continue
                log.info("stream %s: starting (%s)", row.name, self.worker)
                self._runs[sid] = self._start_locked(row, delay=0.0)
            self._stopping = [r for r in self._stopping if r.thread.is_alive()]

    def _active_locked(self) -> int:
        return sum(1 for run in self._runs.values() if run.thread.is_alive() or run.restart_at is not None)

    def _stop_locked(self, stream_id: str) -> None:
        run = self._runs.pop(stream_id)
        log.info("stream %s: stopping (removed, or now run elsewhere)", run.row.name)
        run.stop.set()
        self._stopping.append(run)

    def _reap_locked(self) -> None:
        """Finished pipelines: a failed one is scheduled for a restart; an ended one stays ended."""
        s = self._settings
        for run in self._runs.values():
            if run.thread.is_alive() or run.restart_at is not None:
                continue
            if run.error is None and run.pipeline.stats().state != "failed":
                continue
            # A stream that ran well for a while starts its backoff again from the beginning.
            ran = time.monotonic() - run.started
            fresh = ran > s.restart_max_seconds or run.delay == 0.0
            delay = s.restart_initial_seconds if fresh else run.delay * 2
            run.delay = min(delay, s.restart_max_seconds)
            run.restart_at = time.monotonic() + run.delay
            log.warning("stream %s failed (%s); restarting in %.1f s", run.row.name, self._error(run), run.delay)

    def _start_locked(self, row: StreamRow, *, delay: float) -> _Run:
        pipeline = self._runner(row, self._options(row.options))
        stop = threading.Event()
        thread = threading.Thread(target=self._run, args=(row.id, pipeline, stop), name=f"stream-{row.name}"[:60])
        run = _Run(row=row, pipeline=pipeline, stop=stop, thread=thread, started=time.monotonic(), delay=delay)
        thread.daemon = True
        thread.start()
        return run

    def _options(self, stored: dict[str, Any]) -> StreamOptions:
        known = {f.name for f in dataclasses.fields(StreamOptions)}
        overrides = {k: v for k, v in stored.items() if k in known}
        if "sample_fps" in overrides:  # the floor of adaptive sampling never above the stream's own rate
            overrides["min_sample_fps"] = min(self._settings.min_sample_fps, float(overrides["sample_fps"]))
        # A server plays a file at its frame rate, as a camera would deliver it.
        return StreamOptions.from_settings(self._settings, realtime=True, **overrides)

    def _run(self, stream_id: str, pipeline: StreamRunner, stop: threading.Event) -> None:
        try:
            pipeline.run(stop)
        except Exception as exc:  # a source that cannot be opened, or a bug: the stream fails and is restarted
            log.warning("stream %s: %s", pipeline.name, exc)
            with self._lock:
                run = self._runs.get(stream_id)
                if run is not None and run.pipeline is pipeline:
                    run.error = str(exc) or type(exc).__name__
        self._wake.set()  # let the control loop see the end now

    # --- Status ---

    @staticmethod
    def _error(run: _Run) -> str | None:
        return run.pipeline.stats().error or run.error

    def _status(self, run: _Run) -> StreamStatus:
        stats = run.pipeline.stats()
        state = "failed" if run.restart_at is not None or run.error else stats.state
        return StreamStatus(
            state=state,
            fps=stats.fps,
            lag_seconds=stats.lag_seconds,
            frames=stats.frames,
            dropped_frames=stats.dropped_frames,
            error=stats.error or run.error,
            tracks=[dataclasses.asdict(t) for t in stats.tracks],
            worker=self.worker,
            at=datetime.now(UTC),
        )

    def _waiting_status(self, why: str) -> StreamStatus:
        return StreamStatus(
            state="waiting",
            fps=0.0,
            lag_seconds=0.0,
            frames=0,
            dropped_frames=0,
            error=why,
            tracks=[],
            worker=self.worker,
            at=datetime.now(UTC),
        )

    def _report(self) -> None:
        self._reported = time.monotonic()
        with self._lock:
            statuses = {sid: self._status(run) for sid, run in self._runs.items()}
            statuses.update({sid: self._waiting_status(why) for sid, why in self._waiting.items()})
        gone = [sid for sid, status in statuses.items() if not self._report_status(sid, status)]
        if gone:  # removed since the last look: stop them now rather than at the next poll
            self._wake.set()
