"""stream.manager: the real pipelines on the dev clips: slots (max_streams) and waiting streams, ownership changes,
an ended file stays ended, a failing source is restarted with a doubling backoff, status rows written, close."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from facegate.config import Settings, StreamSettings
from facegate.services import streams as streams_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import StreamCreate
from facegate.stream.manager import Share, StreamManager, pipelines
from facegate.vision.pool import EnginePool


def _wait(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


@pytest.fixture
def rt(tmp_path: Path, opencv_pool: EnginePool) -> Iterator[Runtime]:
    streams = StreamSettings(
        max_streams=2,
        poll_seconds=0.2,
        status_seconds=0.3,
        restart_initial_seconds=0.3,
        restart_max_seconds=1.2,
        sample_fps=2.0,
    )
    runtime = Runtime(Settings(data_dir=tmp_path / "data", workers=2, streams=streams), engine=opencv_pool)
    runtime.open()
    yield runtime
    runtime.close()


@pytest.fixture
def clip(dev: Path) -> str:
    return str(dev / "video" / "short_hamilton_clip.mp4")


def _add(rt: Runtime, name: str, source: str, *, loop: bool = True) -> str:
    return streams_service.add_stream(rt, StreamCreate(source=source, name=name, loop=loop)).id


def _state(rt: Runtime, manager: StreamManager, stream_id: str) -> str:
    return streams_service.get_stream(rt, stream_id, manager).state


def test_slots_waiting_streams_and_removal(rt: Runtime, clip: str) -> None:
    ids = [_add(rt, name, clip) for name in ("a", "b", "c")]
    manager = StreamManager(rt, worker="w1", runner=pipelines(rt))
    manager.start()
    try:
        _wait(lambda: len(manager.running()) == 2)
        assert manager.running() == ids[:2]
        assert _state(rt, manager, ids[2]) == "waiting"
        # Status rows follow, with this worker's name (what other processes show).
        _wait(lambda: all((row.status and row.status.worker == "w1") for row in rt.store.streams.list_streams()))

        streams_service.remove_stream(rt, ids[0], manager)
        _wait(lambda: sorted(manager.running()) == sorted(ids[1:]))
        _wait(lambda: _state(rt, manager, ids[2]) == "running")
    finally:
        manager.close()
    assert manager.running() == []


def test_ownership_decides_what_runs(rt: Runtime, clip: str) -> None:
    first, second = _add(rt, "a", clip), _add(rt, "b", clip)
    mine, unplaced = {first}, {second}
    manager = StreamManager(
        rt,
        worker="w1",
        runner=pipelines(rt),
        share=lambda ids: Share(frozenset(i for i in ids if i in mine), frozenset(i for i in ids if i in unplaced)),
    )
    manager.start()
    try:
        _wait(lambda: manager.running() == [first])
        time.sleep(0.5)
        assert manager.running() == [first]
        # A stream no worker has room for: not run, reported as waiting by the worker that ranks first for it.
        waiting = streams_service.get_stream(rt, second, manager)
        assert (waiting.state, waiting.error) == ("waiting", "no worker has a free stream slot")
        _wait(lambda: (row := rt.store.streams.get(second)) is not None and row.status is not None)
        mine.clear()
        unplaced.clear()
        mine.add(second)  # membership changed: the worker is told
        manager.wake()
        _wait(lambda: manager.running() == [second], timeout=5)
        assert manager.live_status(first) is None
    finally:
        manager.close()


def test_an_ended_file_stays_ended(rt: Runtime, clip: str) -> None:
    stream = _add(rt, "once", clip, loop=False)
    manager = StreamManager(rt, worker="w1", runner=pipelines(rt))
    manager.start()
    try:
        # 10 s of video played at its own pace.
        _wait(lambda: _state(rt, manager, stream) == "ended", timeout=40)
        time.sleep(1.0)
        status = manager.live_status(stream)
        # The whole file went by (275 frames): analysed, or dropped while the engine was busy.
        assert status is not None and status.state == "ended" and status.frames + status.dropped_frames >= 250
        assert manager.running() == []
    finally:
        manager.close()


def test_a_failing_source_is_restarted_with_backoff(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    stream = _add(rt, "missing", "/nonexistent/clip.mp4")
    manager = StreamManager(rt, worker="w1", runner=pipelines(rt))
    caplog.set_level(logging.WARNING, logger="facegate.stream.manager")
    manager.start()
    try:
        _wait(lambda: sum("restarting in" in r.getMessage() for r in caplog.records) >= 4, timeout=15)
    finally:
        manager.close()
    delays = [
        float(r.getMessage().rsplit("in ", 1)[1].split()[0])
        for r in caplog.records
        if "restarting in" in r.getMessage()
    ]
    assert delays[:4] == [0.3, 0.6, 1.2, 1.2]  # doubling up to restart_max_seconds
    status = rt.store.streams.get(stream)
    assert status is not None and status.status is not None
    assert status.status.state == "failed" and status.status.error
