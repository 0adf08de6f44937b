"""Video sources: files, network streams (RTSP, HTTP, ...) and local cameras, read by OpenCV in a thread of
their own into a bounded queue.

A live source (network, camera, or a file paced to real time) never waits for the analysis: when the queue is
full the oldest frame is dropped and counted, so a slow pipeline sees the newest frames and memory stays
bounded. A file read at its own pace (`facegate watch`) blocks instead, so every frame is seen. A network
source that fails or ends reconnects with exponential backoff until stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from facegate.errors import Unprocessable
from facegate.services.streams import URL_SCHEMES

log = logging.getLogger(__name__)

SourceKind = Literal["file", "network", "camera"]
SourceState = Literal["starting", "running", "reconnecting", "ended", "failed"]
# Assumed when a source reports no frame rate (some cameras and streams).
DEFAULT_FPS = 25.0
T = TypeVar("T")


class SourceError(Unprocessable):
    """A source that cannot be opened: a missing file, a file that is not a video, an unreachable URL or camera."""

    code = "source_unavailable"


@dataclass(frozen=True)
class Frame:
    image: npt.NDArray[np.uint8]  # BGR
    index: int  # frames read from the source before this one (across loops and reconnects)
    ts: float  # media time, seconds since the source started
    captured: float  # time.monotonic() when it was read


class DropOldestQueue(Generic[T]):
    """A bounded frame queue. `put` either drops the oldest frame when full (live sources: counted in
    `dropped`) or waits for room (a file read at its own pace)."""

    def __init__(self, maxsize: int, *, drop_oldest: bool) -> None:
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self._items: deque[T] = deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, frame: T, stop: threading.Event) -> None:
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.drop_oldest:
                    self._items.popleft()
                    self.dropped += 1
                elif stop.is_set() or self._closed:
                    return
                else:
                    self._cond.wait(0.1)
            self._items.append(frame)
            self._cond.notify_all()

    def get(self, timeout: float) -> T | None:
        """The oldest waiting frame; None after `timeout` seconds without one or once closed and empty."""
        with self._cond:
            deadline = time.monotonic() + timeout
            while not self._items:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """No more frames will come: `get` returns what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


def _bgr(image: object) -> npt.NDArray[np.uint8]:
    """OpenCV's decoded frame, typed as what it is (8-bit BGR)."""
    return cast(npt.NDArray[np.uint8], image)


def source_kind(source: str) -> SourceKind:
    if source.isdigit():
        return "camera"
    if source.lower().startswith(tuple(f"{scheme}://" for scheme in URL_SCHEMES)):
        return "network"
    return "file"


def check_source(source: str) -> None:
    """What can be told without opening the source: a file path must name an existing file (SourceError
    source_not_found). Lets a command or an API refuse a typo before starting anything."""
    if source_kind(source) == "file" and not Path(source).is_file():
        raise SourceError(f"No video file at {source!r}.", code="source_not_found")


class FrameSource(Protocol):
    """What a pipeline reads frames from: a `VideoSource` it opens itself, or frames another process decoded
    (stream.relay.RelayedSource, in a `facegate worker --role recognize`). `frames` is iterated from one thread;
    the rest may be read from any thread."""

    @property
    def state(self) -> SourceState: ...
    @property
    def error(self) -> str | None: ...
    @property
    def fps(self) -> float: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def live(self) -> bool: ...
    @property
    def dropped(self) -> int: ...

    def open(self) -> None:
        """Start reading; raises SourceError when the source cannot be opened."""
        ...

    def frames(self, stop: threading.Event) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class VideoSource:
    """One opened source. Iterate `frames(stop)` from one consumer thread; `state`, `fps`, `dropped` and
    `error` may be read from any thread."""

    def __init__(
        self,
        source: str,
        *,
        loop: bool = False,
        realtime: bool | None = None,
        queue_size: int = 4,
        open_timeout_seconds: float = 10.0,
        reconnect_initial_seconds: float = 0.5,
        reconnect_max_seconds: float = 30.0,
    ) -> None:
        self.source = source
        self.kind = source_kind(source)
        self.loop = loop
        # Files are read at their own pace unless asked to play as a live stream (a server's stream of a file).
        self.realtime = self.kind != "file" if realtime is None else realtime or self.kind != "file"
        self.open_timeout_seconds = open_timeout_seconds
        self.reconnect_initial_seconds = reconnect_initial_seconds
        self.reconnect_max_seconds = reconnect_max_seconds
        self.queue = DropOldestQueue[Frame](queue_size, drop_oldest=self.realtime)
        self.state: SourceState = "starting"
        self.error: str | None = None
        self.reconnects = 0  # times a dropped network source or camera was opened again
        self.fps = DEFAULT_FPS
        self.width = 0
        self.height = 0
        self._capture: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    @property
    def live(self) -> bool:
        """Frames come in real time (and are dropped rather than waited for)."""
        return self.realtime

    def _capture_open(self) -> cv2.VideoCapture:
        if self.kind == "camera":
            capture = cv2.VideoCapture(int(self.source))
        elif self.kind == "network":
            timeout_ms = int(self.open_timeout_seconds * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            capture = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, params)
        else:
            capture = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"Cannot open the video source {self.source!r}.", code="source_unopenable")
        fps = capture.get(cv2.CAP_PROP_FPS)
        # Some streams report 0 or a nonsense rate such as 90000 (the time base).
        self.fps = fps if 1.0 <= fps <= 240.0 else DEFAULT_FPS
        self.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return capture

    def open(self) -> None:
        """Open the source (raises SourceError) and start reading."""
        check_source(self.source)
        self._capture = self._capture_open()
        ok, first = self._capture.read()
        if not ok:
            self._capture.release()
            raise SourceError(f"The video source {self.source!r} gave no frame.", code="source_unopenable")
        self._thread = threading.Thread(
            target=self._read, args=(first,), name=f"facegate-source-{self.source[:40]}", daemon=True
        )
        self._thread.start()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Frames in order until the source ends (or, for a network source, `stop` is set)."""
        while not stop.is_set():
            frame = self.queue.get(timeout=0.2)
            if frame is not None:
                yield frame
            elif self.queue.closed:
                return

    def close(self) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.open_timeout_seconds + 5)

    # --- The reader thread ---

    def _read(self, first: npt.NDArray[np.uint8]) -> None:
        try:
            self._read_frames(first)
            if self.state != "failed":
                self.state = "ended"
        except Exception as exc:  # a reader that dies must not leave the consumer waiting forever
            log.exception("video source %s failed", self.source)
            self.state, self.error = "failed", str(exc)
        finally:
            if self._capture is not None:
                self._capture.release()
            self.queue.close()

    def _read_frames(self, first: npt.NDArray[np.uint8]) -> None:
        capture = self._capture
        assert capture is not None
        self.state = "running"
        started = time.monotonic()
        index = 0
        offset = 0.0  # media time of the start of this loop (files) or 0
        last_ts = 0.0
        image: npt.NDArray[np.uint8] | None = first
        while not self._stop.is_set():
            if image is None:
                ok, read = capture.read()
                image = _bgr(read) if ok else None
            if image is None:
                if self.kind == "file" and self.loop and index > 0:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    offset = last_ts + 1.0 / self.fps
                    ok, read = capture.read()
                    image = _bgr(read) if ok else None
                if image is None and self.kind == "file":
                    return
                if image is None:
                    capture.release()
                    reopened = self._reconnect()
                    if reopened is None:
                        return
                    capture = self._capture = reopened
                    continue
            assert image is not None
            now = time.monotonic()
            if self.kind == "file":
                pos = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                ts = offset + (pos if pos > 0 or index == 0 else last_ts - offset + 1.0 / self.fps)
                if self.realtime:  # play the file as a live stream: frames at their media time
                    wait = started + ts - now
                    if wait > 0 and self._stop.wait(wait):
                        return
                    now = time.monotonic()
            else:
                ts = now - started
            last_ts = ts
            self.queue.put(Frame(image=image, index=index, ts=ts, captured=now), self._stop)
            index += 1
            image = None

    def _reconnect(self) -> cv2.VideoCapture | None:
        """Open a network source or camera again, waiting longer after each failure; None once stopped."""
        delay = self.reconnect_initial_seconds
        while True:
            self.state = "reconnecting"
            log.warning("video source %s dropped; reconnecting in %.1f s", self.source, delay)
            if self._stop.wait(delay):
                return None
            try:
                capture = self._capture_open()
            except SourceError as exc:
                self.error = exc.message
                delay = min(delay * 2, self.reconnect_max_seconds)
                continue
            self.state, self.error = "running", None
            self.reconnects += 1
            return capture


def open_source(
    source: str,
    *,
    loop: bool = False,
    realtime: bool | None = None,
    queue_size: int = 4,
    open_timeout_seconds: float = 10.0,
    reconnect_initial_seconds: float = 0.5,
    reconnect_max_seconds: float = 30.0,
) -> VideoSource:
    """Open a file path, a network URL (rtsp://, http://, ...) or a camera index ("0") and start reading it.
    `realtime`: play a file at its own frame rate as a live stream would (default: only live sources are).
    Raises SourceError (code source_not_found or source_unopenable)."""
    video = VideoSource(
        source,
        loop=loop,
        realtime=realtime,
        queue_size=queue_size,
        open_timeout_seconds=open_timeout_seconds,
        reconnect_initial_seconds=reconnect_initial_seconds,
        reconnect_max_seconds=reconnect_max_seconds,
    )
    video.open()
    return video
