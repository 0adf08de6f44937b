"""stream.relay on the real NATS on 127.0.0.1:4222 and the real dev clip: an ingest side's sampled frames reach a
recognize side in order with their metadata and end with the file; a slow consumer keeps a bounded queue;
frames nobody subscribes to are kept nowhere; silence and the ingest side's failures show in the state; and the
pipeline on relayed frames names Lin-Manuel Miranda."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import nats
import numpy as np
import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import NotFoundError

from facegate.config import Settings, StreamSettings
from facegate.events.base import Event
from facegate.services import enroll as enroll_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.base import StreamStatus
from facegate.stream.pipeline import Pipeline, StreamOptions
from facegate.stream.relay import FramePublisher, FrameRelay, RelayedPipeline, RelayedSource
from facegate.vision.pool import EnginePool

NATS_URL = "nats://127.0.0.1:4222"
HAMILTON_FRAMES = 275  # video.csv: 640x360 at 29.97 fps
SAMPLED = 46  # 275 frames last 9.18 s: frames at 0, 0.2, ... 9.0 s


@pytest.fixture
def prefix() -> str:
    return f"test.relay{uuid.uuid4().hex[:8]}"


def _relay(prefix: str) -> Iterator[FrameRelay]:
    relay = FrameRelay(NATS_URL, prefix)
    relay.open()
    yield relay
    relay.close()


@pytest.fixture
def ingest(prefix: str) -> Iterator[FrameRelay]:
    """The ingest worker's connection."""
    yield from _relay(prefix)


@pytest.fixture
def recognize(prefix: str) -> Iterator[FrameRelay]:
    """The recognize worker's connection (another one, as in another process)."""
    yield from _relay(prefix)


@pytest.fixture
def clip(dev: Path) -> Path:
    return dev / "video" / "short_hamilton_clip.mp4"


def _publisher(relay: FrameRelay, clip: Path, stream: str = "s1") -> FramePublisher:
    """The whole clip read as fast as it decodes (not paced), 5 frames published per second of video."""
    options = StreamOptions(sample_fps=5.0)
    return FramePublisher(relay, stream_id=stream, name="stage", source=str(clip), options=options, worker="in-1")


def test_sampled_frames_arrive_in_order_with_their_metadata_and_end_with_the_file(
    ingest: FrameRelay, recognize: FrameRelay, clip: Path
) -> None:
    video = RelayedSource(recognize, "s1", queue_size=200, silence_seconds=30)
    video.open()
    publisher = _publisher(ingest, clip)
    publisher.run(threading.Event())
    published = publisher.stats()
    assert (published.state, published.frames, published.dropped_frames) == ("ended", HAMILTON_FRAMES, 0)

    frames = list(video.frames(threading.Event()))  # returns at the end marker
    assert len(frames) == published.analysed_frames
    assert len(frames) == SAMPLED and frames[0].index == 0
    steps = np.diff([f.ts for f in frames])
    assert np.all(np.abs(steps - 0.2) < 1.5 / 29.97), steps
    assert [f.index for f in frames] == sorted(f.index for f in frames)
    assert (video.width, video.height, round(video.fps, 2), video.state) == (640, 360, 29.97, "ended")
    assert video.dropped == 0 and video.ingest is not None and video.ingest.frames == HAMILTON_FRAMES
    # What arrives is the frame the source decoded, through a JPEG at quality 85.
    capture = cv2.VideoCapture(str(clip))
    for _ in range(frames[3].index + 1):
        ok, original = capture.read()
    capture.release()
    assert ok and frames[3].image.shape == original.shape == (360, 640, 3)
    assert float(np.mean(cv2.absdiff(frames[3].image, original))) < 3.0
    video.close()


def test_a_slow_consumer_keeps_only_the_newest_frames(ingest: FrameRelay, recognize: FrameRelay, clip: Path) -> None:
    video = RelayedSource(recognize, "s1", queue_size=3, silence_seconds=30)
    video.open()
    publisher = _publisher(ingest, clip)
    publisher.run(threading.Event())  # nothing consumes meanwhile
    published = publisher.stats().analysed_frames
    deadline = time.monotonic() + 10
    while video.state != "ended" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert video.state == "ended"
    assert len(video.queue) == 3
    assert video.dropped == published - 3  # dropped here (or lost on the way): counted, never kept
    newest = [f.index for f in video.frames(threading.Event())]
    assert len(newest) == 3 and newest[-1] >= HAMILTON_FRAMES - 7
    video.close()


def test_frames_nobody_recognizes_are_kept_nowhere(ingest: FrameRelay, clip: Path, prefix: str) -> None:
    publisher = _publisher(ingest, clip, stream="nobody")
    publisher.run(threading.Event())
    assert publisher.stats().analysed_frames == SAMPLED  # published, to no subscriber

    async def check() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            subject = f"{prefix}.frames.nobody"
            # No JetStream stream stores the subject (the server only forwards core messages to subscribers).
            with pytest.raises(NotFoundError):
                await nc.jetstream().find_stream_name_by_subject(subject)
            # A subscriber arriving now gets none of the earlier frames: nothing was kept for it.
            late = await nc.subscribe(subject)
            await nc.flush()
            with pytest.raises(NatsTimeout):
                await late.next_msg(timeout=1.0)
        finally:
            await nc.close()

    asyncio.run(check())
    # Nor in the publishing process: nothing waits in its connection's buffer.
    nc = ingest._nc
    assert nc is not None and nc.pending_data_size == 0


def test_silence_and_the_ingest_sides_failures_show_in_the_state(ingest: FrameRelay, recognize: FrameRelay) -> None:
    video = RelayedSource(recognize, "s2", queue_size=4, silence_seconds=0.5)
    video.open()
    assert video.state == "starting" and video.error is None
    time.sleep(0.8)
    assert video.state == "reconnecting"
    assert video.error is not None and video.error.startswith("no frames from an ingest worker")

    # The ingest worker cannot open the source: its manager's report says so, and so does this side.
    status = StreamStatus("failed", 0.0, 0.0, 0, 0, "Cannot open the video source", [], "in-1", datetime.now(UTC))
    ingest.report("s2", status)
    deadline = time.monotonic() + 5
    while video.ingest is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert video.state == "reconnecting"
    assert video.error == "ingest in-1: failed: Cannot open the video source"
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert list(video.frames(stop)) == []  # no frame, and no end: it waits for the source's retry
    video.close()


@pytest.fixture
def rt(tmp_path: Path, opencv_pool: EnginePool) -> Iterator[Runtime]:
    runtime = Runtime(Settings(data_dir=tmp_path / "data", workers=2, streams=StreamSettings()), engine=opencv_pool)
    runtime.open()
    yield runtime
    runtime.close()


def test_the_pipeline_on_relayed_frames_names_him(
    rt: Runtime, ingest: FrameRelay, recognize: FrameRelay, clip: Path, dev: Path
) -> None:
    photo = dev / "lin_manuel_miranda" / "1.png"
    lin = enroll_service.enroll(rt, [Upload(photo.name, photo.read_bytes())], name="Lin-Manuel Miranda").person.id
    video = RelayedSource(recognize, "s3", queue_size=64, silence_seconds=30)
    options = StreamOptions.from_settings(rt.settings.streams)
    pipeline = Pipeline(rt, stream_id="s3", name="stage", source="(relayed)", options=options, video=video)
    relayed = RelayedPipeline(pipeline, video)
    with rt.events.hub.subscribe() as events:
        runner = threading.Thread(target=relayed.run, args=(threading.Event(),))
        runner.start()
        deadline = time.monotonic() + 5
        while pipeline.stats().state == "starting" and time.monotonic() < deadline:
            time.sleep(0.02)  # subscribed before the first frame is published
        _publisher(ingest, clip, stream="s3").run(threading.Event())
        runner.join(120)
        assert not runner.is_alive()
        bodies = [e.body() for e in iter(lambda: events.get(0), None) if isinstance(e, Event)]
    assert any(b["type"] == "appeared" and b["person_id"] == lin for b in bodies), bodies
    stats = relayed.stats()
    # The status shows the source as the ingest side read it; the pipeline analysed the sampled frames.
    assert (stats.state, stats.frames) == ("ended", HAMILTON_FRAMES)
    assert stats.analysed_frames == SAMPLED
