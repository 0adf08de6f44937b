"""vision.pool under load: bounded work in flight, refusal at once, timeouts, readiness that does not queue.

One single-worker pool whose worker the tests keep busy with a sleep submitted straight to its executor, so
that "full" and "slow" are exact rather than a race against real work."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from facegate.config import LimitSettings, OpenCVEngineSettings
from facegate.errors import Unavailable
from facegate.vision.analysis import ImageAnalysis
from facegate.vision.pool import EngineBusy, EnginePool

KW: dict[str, Any] = {"max_pixels": 40_000_000, "max_faces": 1, "crops": False}
QUEUE = 2
TIMEOUT = 2.0


@pytest.fixture(scope="module")
def small_pool() -> Iterator[EnginePool]:
    pool = EnginePool(
        OpenCVEngineSettings(), workers=1, limits=LimitSettings(engine_queue=QUEUE, engine_timeout_seconds=TIMEOUT)
    )
    pool.open()
    yield pool
    pool.close()


@pytest.fixture
def photo(dev: Path) -> bytes:
    return (dev / "colin_powell" / "1.jpg").read_bytes()


def occupy(pool: EnginePool, seconds: float) -> Future[None]:
    """Keep the only worker busy, outside admission (as a slow task admitted earlier would)."""
    generation = pool._generation
    assert generation is not None
    return generation.executor.submit(time.sleep, seconds)


def in_other_thread(call: Callable[[], Any]) -> Any:
    """Run `call` in a new thread (a different request); its result, or the exception it raised."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        future = thread.submit(call)
        return future.exception() or future.result()


def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_full_pool_refuses_new_requests_at_once_and_times_out_queued_ones(
    small_pool: EnginePool, photo: bytes
) -> None:
    blocker = occupy(small_pool, 2 * TIMEOUT)
    with ThreadPoolExecutor(max_workers=1) as client:  # one thread: one client's successive requests
        admitted = client.submit(lambda: [small_pool.submit(photo, **KW) for _ in range(QUEUE)]).result()
        assert small_pool.inflight == QUEUE

        started = time.monotonic()
        refused = in_other_thread(lambda: small_pool.submit(photo, **KW))
        assert time.monotonic() - started < 0.5  # refused, not queued
        assert isinstance(refused, EngineBusy) and isinstance(refused, Unavailable)  # 503 for the HTTP layer
        assert refused.code == "engine_busy"
        assert refused.retry_after_seconds >= 1

        # Readiness is answered from the processes, not by a task queued behind the work.
        started = time.monotonic()
        assert small_pool.ready()
        assert time.monotonic() - started < 0.5

        def wait_for_all() -> None:
            for future in admitted:
                with pytest.raises(Unavailable) as timed_out:
                    small_pool.wait(future)
                assert timed_out.value.code == "engine_timeout"

        client.submit(wait_for_all).result()
        assert time.monotonic() - started < TIMEOUT + 1.0
        # A task still waiting in the executor was cancelled (it will never run) and gave its slot back; one
        # already handed to the worker has not ended yet and keeps its slot, so the bound holds.
        running = [f for f in admitted if not f.cancelled()]
        assert running
        assert small_pool.inflight == len(running)

        # Full again: the client's next request is a new one, refused at once (its timed-out task still runs
        # but no longer makes the client an admitted request that may wait for a slot).
        while small_pool.inflight < QUEUE:
            small_pool.submit(photo, **KW)
        started = time.monotonic()
        again = client.submit(lambda: small_pool.submit(photo, **KW)).exception()
        assert isinstance(again, EngineBusy)
        assert time.monotonic() - started < 0.5

    # Busy for a whole timeout without one task finishing: wedged, not ready.
    assert not small_pool.ready()
    blocker.result()
    wait_until(lambda: small_pool.inflight == 0, 10)
    assert small_pool.ready()
    assert len(small_pool.analyze(photo, **KW).faces) == 1


def test_an_admitted_request_waits_for_a_slot_for_its_further_images(small_pool: EnginePool, photo: bytes) -> None:
    # Like an enroll of more photos than the queue holds: once admitted, it is served whole.
    occupy(small_pool, 0.3)
    started = time.monotonic()
    futures = [small_pool.submit(photo, **KW) for _ in range(2 * QUEUE)]
    assert time.monotonic() - started >= 0.2  # the third image waited for a slot instead of being refused
    assert all(len(small_pool.wait(f).faces) == 1 for f in futures)
    assert small_pool.inflight == 0


def test_a_batch_pool_waits_for_a_slot_instead_of_refusing(small_pool: EnginePool, photo: bytes) -> None:
    small_pool.when_full = "wait"
    try:
        occupy(small_pool, 0.3)
        futures = [small_pool.submit(photo, **KW) for _ in range(QUEUE)]
        result = in_other_thread(lambda: small_pool.analyze(photo, **KW))
        assert isinstance(result, ImageAnalysis), result
        assert all(len(small_pool.wait(f).faces) == 1 for f in futures)
    finally:
        small_pool.when_full = "refuse"


def test_queue_limit_defaults_to_four_tasks_per_worker_and_at_least_eight() -> None:
    # Constructors start no process.
    assert EnginePool(OpenCVEngineSettings(), workers=3).queue_limit == 12
    assert EnginePool(OpenCVEngineSettings(), workers=1).queue_limit == 8  # a small burst still fits
    assert EnginePool(OpenCVEngineSettings(), workers=3, limits=LimitSettings(engine_queue=5)).queue_limit == 5
