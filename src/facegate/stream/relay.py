"""Frames between the halves of a split deployment: a `facegate worker --role ingest` reads a stream's source,
samples it and publishes each sampled frame as a JPEG; a `facegate worker --role recognize` runs the stream's
pipeline on them.

Subject `<FACEGATE_STREAMS__FRAMES_PREFIX>.frames.<stream id>` (facegate.frames.<id>) on core NATS, not
JetStream: the server discards a frame nobody subscribes to, and a subscriber that falls behind loses messages
(nats-py's slow-consumer limit, then the recognize side's drop-oldest queue), so nothing piles up anywhere.
Messages carry text headers; a frame has the JPEG as its body, a status message none:

    Facegate-Kind      frame | status
    Facegate-State     the ingest side's view of the stream: starting, running, reconnecting, ended, failed, waiting
    Facegate-Worker    the ingest worker
    Facegate-Fps       frames read from the source per second (measured)
    Facegate-Frames    frames read from the source, Facegate-Dropped frames lost on the ingest side (this run)
    Facegate-Error     what went wrong, when something did
  frames also:
    Facegate-Run       the ingest run (a restart or a takeover starts a new one)
    Facegate-Seq       frames published in this run before this one (a gap: lost in transport)
    Facegate-Index     the frame's index in the source, Facegate-Ts its media time (seconds)
    Facegate-Read      when it was read (Unix seconds), Facegate-Live 1 (a live source) or 0
    Facegate-Source-Fps, Facegate-Width, Facegate-Height   the source's frame rate and size

An ingest worker sends a status message for each stream it holds every FACEGATE_STREAMS__STATUS_SECONDS (its
stream manager's report: running, failed while its source is retried, waiting for a free slot, ended) and one
as soon as a file ends: the recognize side's pipeline then ends too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import cv2
import nats
import numpy as np
import numpy.typing as npt
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from facegate.errors import Unavailable
from facegate.store.base import StreamStatus
from facegate.stream.pipeline import FPS_WINDOW, Pipeline, StreamOptions, StreamStats
from facegate.stream.sources import (
    DEFAULT_FPS,
    DropOldestQueue,
    Frame,
    SourceError,
    SourceState,
    VideoSource,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

JPEG_QUALITY = 85
# Lower qualities tried for a frame whose JPEG is over the server's max_payload (1 MB by default: a 4K frame).
FALLBACK_QUALITIES = (70, 50)
HEADER_ROOM = 2048  # bytes of max_payload left for the headers
# Messages nats-py may hold for one subscription before it drops them (the callback only queues them).
SUB_PENDING_MSGS = 64
SUB_PENDING_BYTES = 64 * 1024 * 1024


def frames_subject(prefix: str, stream_id: str) -> str:
    return f"{prefix}.frames.{stream_id}"


@dataclass(frozen=True)
class IngestStatus:
    """What every message says of the ingest side of a stream."""

    state: str
    worker: str
    fps: float
    frames: int
    dropped: int
    error: str | None = None

    def headers(self, kind: str) -> dict[str, str]:
        headers = {
            "Facegate-Kind": kind,
            "Facegate-State": self.state,
            "Facegate-Worker": self.worker,
            "Facegate-Fps": f"{self.fps:.2f}",
            "Facegate-Frames": str(self.frames),
            "Facegate-Dropped": str(self.dropped),
        }
        if self.error:
            headers["Facegate-Error"] = " ".join(self.error.split())[:500]  # one line
        return headers

    @classmethod
    def parse(cls, headers: dict[str, str]) -> IngestStatus:
        """ValueError or KeyError on a message that is not one of ours."""
        return cls(
            state=headers["Facegate-State"],
            worker=headers["Facegate-Worker"],
            fps=float(headers["Facegate-Fps"]),
            frames=int(headers["Facegate-Frames"]),
            dropped=int(headers["Facegate-Dropped"]),
            error=headers.get("Facegate-Error"),
        )


@dataclass(frozen=True)
class FrameHeader:
    run: str
    seq: int
    index: int
    ts: float
    read: float  # time.time() when read
    live: bool
    source_fps: float
    width: int
    height: int

    def headers(self) -> dict[str, str]:
        return {
            "Facegate-Run": self.run,
            "Facegate-Seq": str(self.seq),
            "Facegate-Index": str(self.index),
            "Facegate-Ts": f"{self.ts:.6f}",
            "Facegate-Read": f"{self.read:.6f}",
            "Facegate-Live": "1" if self.live else "0",
            "Facegate-Source-Fps": f"{self.source_fps:.3f}",
            "Facegate-Width": str(self.width),
            "Facegate-Height": str(self.height),
        }

    @classmethod
    def parse(cls, headers: dict[str, str]) -> FrameHeader:
        return cls(
            run=headers["Facegate-Run"],
            seq=int(headers["Facegate-Seq"]),
            index=int(headers["Facegate-Index"]),
            ts=float(headers["Facegate-Ts"]),
            read=float(headers["Facegate-Read"]),
            live=headers["Facegate-Live"] == "1",
            source_fps=float(headers["Facegate-Source-Fps"]),
            width=int(headers["Facegate-Width"]),
            height=int(headers["Facegate-Height"]),
        )


class FrameRelay:
    """One NATS connection for a worker's frames, on an event loop in a thread of its own (nats-py is asyncio; the
    pipelines are threads). Reconnects by itself; a publish while disconnected is buffered up to nats-py's
    pending size (2 MB) and refused beyond it."""

    def __init__(self, url: str, prefix: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="facegate-frames-nats", daemon=True)
        self._nc: Client | None = None
        self._closing = False

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout)
        except BaseException:
            future.cancel()
            raise

    def open(self) -> None:
        """Unavailable when NATS cannot be reached now."""

        async def errors(exc: Exception) -> None:
            if not isinstance(exc, SlowConsumerError):  # a frame lost by a slow consumer shows in its sequence
                log.warning("frames: NATS at %s: %r", self.url, exc)

        async def disconnected() -> None:
            if not self._closing:
                log.warning("frames: disconnected from NATS at %s; reconnecting", self.url)

        self._thread.start()
        try:
            self._nc = self._call(
                nats.connect(
                    self.url,
                    name="facegate-frames",
                    connect_timeout=max(1, round(self.timeout)),
                    max_reconnect_attempts=-1,
                    error_cb=errors,
                    disconnected_cb=disconnected,
                )
            )
        except Exception as exc:
            self.close()
            raise Unavailable(
                f"Cannot reach NATS at {self.url} for the frames: {exc!r}", code="nats_unavailable"
            ) from exc

    def close(self) -> None:
        self._closing = True
        nc = self._nc
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                self._call(nc.close())
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self.timeout)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def max_payload(self) -> int:
        return self._nc.max_payload if self._nc is not None else 1024 * 1024

    def subject(self, stream_id: str) -> str:
        return frames_subject(self.prefix, stream_id)

    def publish(self, stream_id: str, payload: bytes, headers: dict[str, str]) -> bool:
        """Hand a message to the connection; False when it was refused (closed, or disconnected with its
        buffer full)."""
        nc = self._nc
        if nc is None:
            return False
        try:
            self._call(nc.publish(self.subject(stream_id), payload, headers=headers))
        except Exception as exc:
            log.debug("frames: not published on %s: %r", self.subject(stream_id), exc)
            return False
        return True

    def report(self, stream_id: str, status: StreamStatus) -> bool:
        """An ingest worker's stream status (its stream manager's report), as a status message."""
        ingest = IngestStatus(
            state=status.state,
            worker=status.worker,
            fps=status.fps,
            frames=status.frames,
            dropped=status.dropped_frames,
            error=status.error,
        )
        self.publish(stream_id, b"", ingest.headers("status"))
        return True  # a removed stream is noticed at the manager's next look at the store

    def subscribe(self, stream_id: str, on_message: Callable[[bytes, dict[str, str]], None]) -> Subscription:
        """`on_message` runs on the relay's event loop: it must be quick and must not block."""
        nc = self._nc
        if nc is None:
            raise Unavailable("The frames relay is not open.", code="nats_unavailable")

        async def received(msg: Msg) -> None:
            on_message(msg.data, msg.headers or {})

        async def subscribe() -> Subscription:
            subscription = await nc.subscribe(
                self.subject(stream_id),
                cb=received,
                pending_msgs_limit=SUB_PENDING_MSGS,
                pending_bytes_limit=SUB_PENDING_BYTES,
            )
            await nc.flush(timeout=max(1, round(self.timeout)))  # the server has it: no frame published after is missed
            return subscription

        return self._call(subscribe())

    def unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(Exception):
            self._call(subscription.unsubscribe())


def _jpeg(image: npt.NDArray[np.uint8], limit: int) -> bytes | None:
    """The frame as a JPEG of at most `limit` bytes (lower qualities tried for a huge frame), or None."""
    for quality in (JPEG_QUALITY, *FALLBACK_QUALITIES):
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(encoded) <= limit:
            return encoded.tobytes()
    return None


class FramePublisher:
    """An ingest worker's stream: reads the source (reconnecting as the pipeline would), samples it at the stream's
    `sample_fps` by the same rule as the pipeline, and publishes each sampled frame. The stream manager runs it
    like a pipeline (`run`, `stats`, `latest_frame`)."""

    def __init__(
        self, relay: FrameRelay, *, stream_id: str, name: str, source: str, options: StreamOptions, worker: str
    ) -> None:
        self.relay = relay
        self.stream_id = stream_id
        self.name = name
        self.source = source
        self.options = options
        self.worker = worker
        self._lock = threading.Lock()
        self._video: VideoSource | None = None
        self._state: SourceState = "starting"
        self._error: str | None = None
        self._frames = 0
        self._published = 0
        self._unsent = 0
        self._fps = 0.0
        self._lag = 0.0
        self._jpeg: bytes | None = None

    def stats(self) -> StreamStats:
        video = self._video
        with self._lock:
            state = self._state
            if video is not None and state == "running" and video.state == "reconnecting":
                state = "reconnecting"
            return StreamStats(
                state=state,
                fps=round(self._fps, 2),
                lag_seconds=round(self._lag, 3),
                frames=self._frames,
                dropped_frames=(video.dropped if video else 0) + self._unsent,
                error=self._error or (video.error if video else None),
                tracks=[],
                analysed_frames=self._published,
                sample_fps=self.options.sample_fps,
            )

    def latest_frame(self) -> bytes | None:
        """The JPEG published last."""
        with self._lock:
            return self._jpeg

    def _status(self) -> IngestStatus:
        stats = self.stats()
        return IngestStatus(stats.state, self.worker, stats.fps, stats.frames, stats.dropped_frames, stats.error)

    def run(self, stop: threading.Event) -> None:
        options = self.options
        try:
            video = options.open(self.source)
        except SourceError as exc:
            with self._lock:
                self._state, self._error = "failed", exc.message
            raise
        self._video = video
        run = uuid.uuid4().hex[:12]
        interval = 1.0 / options.sample_fps
        with self._lock:
            self._state = "running"
        next_sample = 0.0
        reads: deque[float] = deque(maxlen=FPS_WINDOW)
        try:
            for frame in video.frames(stop):
                with self._lock:
                    self._frames += 1
                    reads.append(time.monotonic())
                    span = reads[-1] - reads[0]
                    self._fps = (len(reads) - 1) / span if span > 0 else 0.0
                if frame.ts + 0.5 / video.fps < next_sample:
                    continue
                next_sample = frame.ts + interval
                self._send(frame, video, run)
        finally:
            video.close()
            with self._lock:
                if video.state == "failed":
                    self._state, self._error = "failed", video.error
                else:
                    self._state = "ended"
            if video.state == "ended" and not stop.is_set():  # a file's end (not a stop): recognition ends too
                self.relay.publish(self.stream_id, b"", self._status().headers("status"))

    def _send(self, frame: Frame, video: VideoSource, run: str) -> None:
        jpeg = _jpeg(frame.image, self.relay.max_payload - HEADER_ROOM)
        if jpeg is None:
            with self._lock:
                self._unsent += 1
                self._error = "a frame's JPEG is larger than the NATS server's max_payload"
            return
        header = FrameHeader(
            run=run,
            seq=self._published,
            index=frame.index,
            ts=frame.ts,
            read=time.time() - (time.monotonic() - frame.captured),
            live=video.live,
            source_fps=video.fps,
            width=video.width,
            height=video.height,
        )
        sent = self.relay.publish(self.stream_id, jpeg, {**self._status().headers("frame"), **header.headers()})
        with self._lock:
            if sent:
                self._published += 1
                self._jpeg = jpeg
                self._lag = max(0.0, time.monotonic() - frame.captured)
            else:
                self._unsent += 1


@dataclass(frozen=True)
class _Relayed:
    jpeg: bytes
    header: FrameHeader


class RelayedSource:
    """The frames of one stream as an ingest worker publishes them: a `FrameSource` for the pipeline of a
    recognize worker. Frames wait in a bounded queue that drops the oldest (counted with those lost in transport
    and those the ingest side lost, in `dropped`); they are decoded only when the pipeline takes them. A status
    that says the source ended ends the frames; silence (no ingest worker holds the stream, or it died) shows as
    `reconnecting` with an error until frames come again."""

    def __init__(self, relay: FrameRelay, stream_id: str, *, queue_size: int, silence_seconds: float) -> None:
        self.relay = relay
        self.stream_id = stream_id
        self.silence_seconds = silence_seconds
        self.queue = DropOldestQueue[_Relayed](queue_size, drop_oldest=True)
        self.ingest: IngestStatus | None = None  # the latest message's
        self.fps = DEFAULT_FPS
        self.width = 0
        self.height = 0
        self.live = True
        self._lock = threading.Lock()
        self._never = threading.Event()  # `put` on a drop-oldest queue never waits
        self._subscription: Subscription | None = None
        self._heard = time.monotonic()
        self._ended = False  # the ingest side said the source ended (frames may still wait in the queue)
        self._run: str | None = None  # the ingest run of the latest frame received, and its sequence number
        self._seq = -1
        self._lost = 0  # frames missing from the sequence, and frames that did not decode
        self._out_run: str | None = None  # the run of the latest frame given to the pipeline
        self._out_ts = 0.0
        self._out_read = 0.0
        self._ts_offset = 0.0

    # --- FrameSource ---

    @property
    def silent(self) -> bool:
        return time.monotonic() - self._heard > self.silence_seconds

    @property
    def state(self) -> SourceState:
        if self._ended:
            return "ended"
        ingest = self.ingest
        if self.silent or (ingest is not None and ingest.state != "running"):
            return "reconnecting"
        return "running" if ingest is not None else "starting"

    @property
    def error(self) -> str | None:
        if self.silent:
            return f"no frames from an ingest worker for {time.monotonic() - self._heard:.0f} s"
        ingest = self.ingest
        if ingest is None or (ingest.state == "running" and not ingest.error):
            return None
        return f"ingest {ingest.worker}: {ingest.state}" + (f": {ingest.error}" if ingest.error else "")

    @property
    def dropped(self) -> int:
        ingest = self.ingest
        with self._lock:
            return self.queue.dropped + self._lost + (ingest.dropped if ingest else 0)

    def open(self) -> None:
        try:
            self._subscription = self.relay.subscribe(self.stream_id, self._received)
        except Exception as exc:
            raise SourceError(f"Cannot subscribe to the stream's frames: {exc!r}", code="source_unopenable") from exc
        self._heard = time.monotonic()

    def close(self) -> None:
        if self._subscription is not None:
            self.relay.unsubscribe(self._subscription)
            self._subscription = None
        self.queue.close()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        while not stop.is_set():
            item = self.queue.get(timeout=0.2)
            if item is None:
                if self.queue.closed:
                    return
                continue
            decoded = cv2.imdecode(np.frombuffer(item.jpeg, np.uint8), cv2.IMREAD_COLOR)
            if decoded is None:
                with self._lock:
                    self._lost += 1
                continue
            image = cast(npt.NDArray[np.uint8], decoded)
            header = item.header
            if header.run != self._out_run:
                # A new ingest run (restart, takeover) starts its media time again: continue ours, the gap
                # between the runs included, so the pipeline's sampling and its tracks' ages stay in order.
                if self._out_run is not None:
                    gap = max(1.0 / header.source_fps, header.read - self._out_read)
                    self._ts_offset = self._out_ts + gap - header.ts
                self._out_run = header.run
            ts = header.ts + self._ts_offset
            self._out_ts, self._out_read = ts, header.read
            # When it was read, on this process's monotonic clock (the hosts' clocks agree through NTP).
            captured = time.monotonic() - max(0.0, time.time() - header.read)
            yield Frame(image=image, index=header.index, ts=ts, captured=captured)

    # --- On the relay's event loop ---

    def _received(self, payload: bytes, headers: dict[str, str]) -> None:
        try:
            ingest = IngestStatus.parse(headers)
            header = FrameHeader.parse(headers) if headers.get("Facegate-Kind") == "frame" else None
        except (KeyError, ValueError):
            log.warning("frames of stream %s: a message without facegate's headers; ignored", self.stream_id)
            return
        with self._lock:
            self.ingest = ingest
            self._heard = time.monotonic()
            if header is not None:
                if header.run == self._run and header.seq > self._seq + 1:
                    self._lost += header.seq - self._seq - 1
                self._run, self._seq = header.run, header.seq
                self.fps, self.live = header.source_fps, header.live
                self.width, self.height = header.width, header.height
        if header is not None:
            self.queue.put(_Relayed(payload, header), self._never)
        elif ingest.state == "ended":
            self._ended = True
            self.queue.close()


class RelayedPipeline:
    """A recognize worker's stream: the pipeline on relayed frames. Its status shows the source's frame rate and
    frame count as the ingest worker reads them (the pipeline itself sees only the sampled frames)."""

    def __init__(self, pipeline: Pipeline, video: RelayedSource) -> None:
        self.pipeline = pipeline
        self.video = video
        self.name = pipeline.name

    def run(self, stop: threading.Event) -> None:
        self.pipeline.run(stop)

    def stats(self) -> StreamStats:
        stats = self.pipeline.stats()
        ingest = self.video.ingest
        if ingest is None:
            return stats
        return dataclasses.replace(stats, fps=ingest.fps, frames=ingest.frames)

    def latest_frame(self) -> bytes | None:
        return self.pipeline.latest_frame()
