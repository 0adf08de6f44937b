"""One video stream from frames to events: sample frames, detect and embed faces in the engine pool, track
them, decide each track's identity by a vote over its best frames, announce it once (`appeared`), again when the
vote changes who it is (`updated`) and once more when it has gone (`left`, with the final identity).

Each track has one match-history row: written when it is announced (its best snapshot so far, so `appeared`
carries the `match_id`), rewritten in place with the best snapshot and identity when it changes and at `left`.
A process killed in between leaves the row as last written, with its crop.

Detection runs on sampled frames only (`sample_fps`); on a live source the rate falls (down to
`min_sample_fps`) while analysis takes longer than the frame budget, and frames that pile up meanwhile are
dropped by the source's bounded queue. A track already announced is embedded again only every
`reembed_seconds`; between analysed frames the tracker predicts.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from facegate.config import StreamSettings
from facegate.errors import FacegateError, NotFound, Unavailable
from facegate.events.base import Event, EventType
from facegate.services.identify import match_and_record, search_faces
from facegate.services.runtime import Runtime
from facegate.stream.identity import Decision, TrackIdentity
from facegate.stream.sources import Frame, FrameSource, SourceError, SourceState, VideoSource, open_source
from facegate.stream.tracker import FaceTracker
from facegate.vision.analysis import ImageAnalysis
from facegate.vision.engine import Box

log = logging.getLogger(__name__)

# Weight of the newest measurement in the moving average of the analysis time.
SMOOTHING = 0.2
# Frames over which the source's frame rate is measured.
FPS_WINDOW = 50
# The live sampling interval leaves this much headroom over the measured analysis time.
HEADROOM = 1.2


@dataclass(frozen=True)
class StreamOptions:
    """How one stream is sampled and tracked; defaults from `StreamSettings` (FACEGATE_STREAMS__*)."""

    sample_fps: float = 5.0
    min_sample_fps: float = 1.0
    loop: bool = False
    # Play a file at its frame rate, as a live stream (a server's stream of a file); `facegate watch` reads a
    # file as fast as it can analyse it instead, every sampled frame.
    realtime: bool = False
    max_faces: int = 20
    min_face_size: int = 24
    min_observations: int = 3
    unknown_after: int = 8
    max_observations: int = 10
    reembed_seconds: float = 2.0
    leave_seconds: float = 2.0
    track_distance: float = 1.0
    queue_size: int = 4
    open_timeout_seconds: float = 10.0
    reconnect_initial_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: StreamSettings, **overrides: Any) -> StreamOptions:
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(cls) if hasattr(settings, f.name)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def open(self, source: str) -> VideoSource:
        """Open `source` and start reading it as these options say (looping, pace, queue, reconnection)."""
        return open_source(
            source,
            loop=self.loop,
            realtime=self.realtime or None,
            queue_size=self.queue_size,
            open_timeout_seconds=self.open_timeout_seconds,
            reconnect_initial_seconds=self.reconnect_initial_seconds,
            reconnect_max_seconds=self.reconnect_max_seconds,
        )


@dataclass(frozen=True)
class TrackStatus:
    track: str
    box: dict[str, int]
    person_id: str | None
    name: str | None
    distance: float | None


@dataclass(frozen=True)
class StreamStats:
    state: SourceState
    fps: float  # source frames consumed per second (wall clock)
    lag_seconds: float  # how long ago the frame analysed last was captured (live sources)
    frames: int  # frames read from the source
    dropped_frames: int  # dropped by the full queue, or refused by a busy engine
    error: str | None
    tracks: list[TrackStatus]
    analysed_frames: int = 0
    sample_fps: float = 0.0  # the current analysis rate (falls on a live source that cannot keep up)


@dataclass(frozen=True)
class _Pending:
    frame: Frame
    future: Future[ImageAnalysis]
    submitted: float  # time.monotonic()


@dataclass
class _Track:
    id: str
    identity: TrackIdentity
    box: Box
    first_seen: float  # media seconds
    last_seen: float
    first_wall: datetime
    last_wall: datetime
    last_embedded: float | None = None
    appeared: bool = False
    decision: Decision | None = None
    announced: str | None = None  # the person id the events said last (None: unknown)
    match_id: int | None = None  # the track's history row, once written


def _box_body(box: Box) -> dict[str, int]:
    return {"left": box.left, "top": box.top, "width": box.width, "height": box.height}


class Pipeline:
    """One source's pipeline. `run(stop)` blocks until the source ends or `stop` is set; `stats()` and
    `latest_frame()` may be called from other threads meanwhile."""

    def __init__(
        self,
        rt: Runtime,
        *,
        stream_id: str,
        name: str,
        source: str,
        options: StreamOptions,
        video: FrameSource | None = None,
    ) -> None:
        """`video`: frames from elsewhere (a recognize worker's relayed source) instead of opening `source`."""
        self.rt = rt
        self.stream_id = stream_id
        self.name = name
        self.source = source
        self.options = options
        self._threshold = rt.engine.info.threshold
        self._top_k = rt.settings.identify.top_k
        self._lock = threading.Lock()
        self._state: SourceState = "starting"
        self._error: str | None = None
        self._given = video
        self._video: FrameSource | None = None
        self._tracks: dict[int, _Track] = {}  # tracker id -> track
        self._frames = 0
        self._analysed = 0
        self._refused = 0
        self._fps = 0.0
        self._lag = 0.0
        self._cost = 0.0  # seconds per analysed frame, moving average
        self._interval = 1.0 / options.sample_fps
        self._inflight = max(1, rt.engine.workers)  # frames analysed at once
        self._last_frame: npt.NDArray[np.uint8] | None = None
        self._last_frame_ts = -1.0  # media seconds of that frame
        self._started_mono = time.monotonic()
        self._started_wall = datetime.now(UTC)

    # --- Observers (any thread) ---

    def stats(self) -> StreamStats:
        video = self._video
        with self._lock:
            tracks = [
                TrackStatus(
                    track=t.id,
                    box=_box_body(t.box),
                    person_id=t.decision.person_id if t.decision else None,
                    name=t.decision.name if t.decision else None,
                    distance=t.decision.distance if t.decision else None,
                )
                for t in self._tracks.values()
                if t.appeared
            ]
            state = self._state
            if video is not None and state == "running" and video.state == "reconnecting":
                state = "reconnecting"
            return StreamStats(
                state=state,
                fps=round(self._fps, 2),
                lag_seconds=round(self._lag, 3),
                frames=self._frames,
                dropped_frames=(video.dropped if video else 0) + self._refused,
                error=self._error or (video.error if video else None),
                tracks=tracks,
                analysed_frames=self._analysed,
                sample_fps=round(1.0 / self._interval, 2),
            )

    def latest_frame(self) -> bytes | None:
        """JPEG of the frame analysed last, with the boxes and names of the announced tracks detected in it (a
        track kept through a few frames without its face, e.g. turned away, has only a predicted box: not drawn)."""
        with self._lock:
            image = self._last_frame
            tracks = [
                (t.box, t.decision.name if t.decision else None)
                for t in self._tracks.values()
                if t.appeared and t.last_seen == self._last_frame_ts
            ]
        if image is None:
            return None
        image = image.copy()
        for box, name in tracks:
            color = (0, 200, 0) if name else (0, 165, 255)
            cv2.rectangle(image, (box.left, box.top), (box.left + box.width, box.top + box.height), color, 2)
            cv2.putText(
                image, name or "unknown", (box.left, max(12, box.top - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2
            )
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return jpeg.tobytes() if ok else None

    # --- The loop ---

    def run(self, stop: threading.Event) -> None:
        """Raises SourceError when the source cannot be opened (stats() then says "failed" with the error)."""
        options = self.options
        try:
            video = self._open()
        except SourceError as exc:
            with self._lock:
                self._state, self._error = "failed", exc.message
            raise
        self._video = video
        # Enough tracker updates (at the highest sampling rate) to keep a track through `leave_seconds`.
        tracker = FaceTracker(
            max_distance=options.track_distance,
            keep_updates=int(options.leave_seconds * options.sample_fps) + 2,
        )
        self._started_mono = time.monotonic()
        self._started_wall = datetime.now(UTC)
        with self._lock:
            self._state = "running"
        next_sample = 0.0
        pending: deque[_Pending] = deque()
        reads: deque[float] = deque(maxlen=FPS_WINDOW)  # when the latest frames were read
        try:
            for frame in video.frames(stop):
                now = time.monotonic()
                with self._lock:
                    self._frames += 1
                    reads.append(now)
                    span = reads[-1] - reads[0]
                    self._fps = (len(reads) - 1) / span if span > 0 else 0.0
                # Frames between samples are skipped (half a frame of tolerance against timestamp jitter).
                if frame.ts + 0.5 / video.fps < next_sample:
                    continue
                next_sample = frame.ts + self._interval
                submitted = self._submit(frame)
                if submitted is not None:
                    pending.append(submitted)
                # Up to one frame per engine worker in flight: the next frame is detected while this one's
                # faces are embedded. Results are taken in order, so the tracker sees frames in order.
                while len(pending) >= self._inflight or (pending and pending[0].future.done()):
                    self._analyse(pending.popleft(), tracker, video)
            while pending:
                self._analyse(pending.popleft(), tracker, video)
        finally:
            for left in pending:  # stopped: results no longer wanted
                left.future.cancel()
            video.close()
            self._finish_all()
            with self._lock:
                if video.state == "failed":
                    self._state, self._error = "failed", video.error
                else:
                    self._state = "ended"

    def _open(self) -> FrameSource:
        if self._given is not None:
            self._given.open()
            return self._given
        return self.options.open(self.source)

    def _submit(self, frame: Frame) -> _Pending | None:
        """Send a frame to the engine; None when the engine refused it (busy or restarting: the frame is lost,
        the stream goes on). Tracks that need no embedding now are passed as boxes to skip."""
        options = self.options
        with self._lock:
            skip = [t.box for t in self._tracks.values() if not self._wants_embedding(t, frame.ts)]
        try:
            future = self.rt.engine.submit_frame(
                frame.image,
                max_faces=options.max_faces,
                crops=True,
                secondary="input",
                skip=skip,
                min_face_size=options.min_face_size,
            )
        except Unavailable as exc:
            self._lost(frame, exc)
            return None
        return _Pending(frame, future, time.monotonic())

    def _lost(self, frame: Frame, exc: FacegateError) -> None:
        log.warning("stream %s: frame %d not analysed: %s", self.name, frame.index, exc.message)
        with self._lock:
            self._refused += 1

    def _analyse(self, pending: _Pending, tracker: FaceTracker, video: FrameSource) -> None:
        options = self.options
        frame = pending.frame
        try:
            analysis = self.rt.engine.wait(pending.future)
        except Unavailable as exc:
            self._lost(frame, exc)
            return
        tracked = tracker.update(analysis.boxes)
        embedded = {face.box: face for face in analysis.faces}
        matched = [(t, embedded[t.box]) for t in tracked if t.detection is not None and t.box in embedded]
        candidates, _ = search_faces(
            self.rt, [face for _, face in matched], threshold=self._threshold, top_k=self._top_k
        )
        by_tracker_id = {t.id: (face, cands) for (t, face), cands in zip(matched, candidates, strict=True)}
        wall = self._wall(frame, video)
        announce: list[_Track] = []
        changed: list[_Track] = []
        with self._lock:
            for tb in tracked:
                track = self._tracks.get(tb.id)
                if track is None:
                    if tb.detection is None:
                        continue  # a predicted box of a track that has already left
                    track = _Track(
                        id=str(uuid.uuid4()),
                        identity=TrackIdentity(keep=options.max_observations),
                        box=tb.box,
                        first_seen=frame.ts,
                        last_seen=frame.ts,
                        first_wall=wall,
                        last_wall=wall,
                    )
                    self._tracks[tb.id] = track
                track.box = tb.box
                if tb.detection is None:
                    continue
                track.last_seen, track.last_wall = frame.ts, wall
                seen = by_tracker_id.get(tb.id)
                if seen is None:
                    continue
                face, cands = seen
                track.identity.add(face, cands)
                track.last_embedded = frame.ts
                track.decision = track.identity.decide(self._threshold, options.min_observations)
                if not track.appeared and self._confirmed(track, track.decision):
                    track.appeared = True
                    announce.append(track)
                elif track.appeared and track.decision.person_id != track.announced:
                    changed.append(track)
            self._analysed += 1
            self._last_frame, self._last_frame_ts = frame.image, frame.ts
            self._lag = max(0.0, time.monotonic() - frame.captured) if video.live else 0.0
        for track in announce:
            self._publish("appeared", track, match_id=self._record(track))
        for track in changed:
            self._publish("updated", track, match_id=self._record(track))
        self._leave_idle(frame)
        # With frames in flight side by side, each costs its latency shared among them.
        self._adapt((time.monotonic() - pending.submitted) / self._inflight, video)

    def _wants_embedding(self, track: _Track, ts: float) -> bool:
        if not track.appeared or track.last_embedded is None:
            return True
        return ts - track.last_embedded >= self.options.reembed_seconds

    def _confirmed(self, track: _Track, decision: Decision) -> bool:
        seen = track.identity.seen
        if seen < self.options.min_observations:
            return False
        if decision.person_id is not None or seen >= self.options.unknown_after:
            return True
        return track.identity.clearly_unknown(self._threshold)

    def _adapt(self, cost: float, video: FrameSource) -> None:
        """On a live source, sample no faster than analysis keeps up with (within the configured bounds)."""
        self._cost = (1 - SMOOTHING) * self._cost + SMOOTHING * cost if self._cost else cost
        if not video.live:
            return
        fastest, slowest = 1.0 / self.options.sample_fps, 1.0 / self.options.min_sample_fps
        self._interval = min(slowest, max(fastest, self._cost * HEADROOM))

    def _wall(self, frame: Frame, video: FrameSource) -> datetime:
        """When a frame was seen: its capture time for a live source, the run's start plus its media time for a
        file read at its own pace."""
        offset = frame.captured - self._started_mono if video.live else frame.ts
        return self._started_wall + timedelta(seconds=offset)

    # --- Tracks that end ---

    def _leave_idle(self, frame: Frame) -> None:
        with self._lock:
            gone = [k for k, t in self._tracks.items() if frame.ts - t.last_seen > self.options.leave_seconds]
            tracks = [self._tracks.pop(k) for k in gone]
        for track in tracks:
            self._finish(track)

    def _finish_all(self) -> None:
        with self._lock:
            tracks = list(self._tracks.values())
            self._tracks.clear()
        for track in tracks:
            try:
                self._finish(track)
            except Exception:  # one failed write must not cost the other tracks their `left`
                log.exception("stream %s: could not close track %s", self.name, track.id)

    def _finish(self, track: _Track) -> None:
        """A track that was announced gets its history row brought up to date and its `left` event; one never
        confirmed (too few frames: a passing face, a false detection) ends silently."""
        if not track.appeared:
            return
        track.decision = track.identity.decide(self._threshold, self.options.min_observations)
        self._publish("left", track, match_id=self._record(track))

    def _record(self, track: _Track) -> int | None:
        """Write the track's history row with its best snapshot and current identity, or rewrite the row it has
        (the same row: one per track; written anew if it went meanwhile); returns the row's id. The events of
        the track say what was recorded (`announced`)."""
        best = track.identity.best
        decision = track.decision or Decision(None, None, None, None, 0)
        match = decision.candidate()
        if best is None:
            return track.match_id
        video = self._video
        width, height = (video.width, video.height) if video else (0, 0)
        analysis = ImageAnalysis(width=width, height=height, faces=[best], boxes=[best.box])
        # At most: the row gone (written anew), then the person gone (written as unknown).
        for _ in range(3):
            try:
                result = match_and_record(
                    self.rt,
                    analysis,
                    threshold=self._threshold,
                    top_k=self._top_k,
                    source=f"video:{self.name}",
                    request_id=track.id,
                    decided=[match],
                    replace=track.match_id,
                    recorded_person_id=track.announced,
                )
            except NotFound as exc:
                if exc.code == "match_not_found" and track.match_id is not None:
                    track.match_id = None  # purged, or deleted with its person: written anew
                    continue
                if exc.code == "person_not_found" and match is not None:
                    # The person was deleted meanwhile: recorded as unknown, and no longer voted for.
                    track.identity.forget(match.person_id)
                    track.decision = Decision(None, None, None, None, decision.observations)
                    match = None
                    continue
                log.error("stream %s: track %s not recorded: %s", self.name, track.id, exc.message)
                break
            except FacegateError as exc:
                log.error("stream %s: track %s not recorded: %s", self.name, track.id, exc.message)
                break
            track.match_id = result.faces[0].match_id
            break
        track.announced = track.decision.person_id if track.decision else None
        return track.match_id

    def _publish(self, kind: EventType, track: _Track, *, match_id: int | None) -> None:
        decision = track.decision or Decision(None, None, None, None, 0)
        self.rt.events.publish(
            Event(
                kind,
                {
                    "stream": self.name,
                    "stream_id": self.stream_id,
                    "track": track.id,
                    "person_id": decision.person_id,
                    "name": decision.name,
                    "distance": decision.distance,
                    "confidence": decision.confidence,
                    "first_seen": track.first_wall.isoformat(),
                    "last_seen": track.last_wall.isoformat(),
                    # Seconds into the video: what a user of a file looks up.
                    "first_seen_offset": round(track.first_seen, 3),
                    "last_seen_offset": round(track.last_seen, 3),
                    "box": _box_body(track.box),
                    "match_id": match_id,
                },
            )
        )
