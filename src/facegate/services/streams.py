"""Video streams: add, list, show and remove them; the live status of each as reported by the process running it.

The store holds what should run (name, source, sampling options) and the status the running process writes every
few seconds, so every API replica can answer for every stream. A process that runs streams itself (the embedded
`facegate serve`) passes its `LiveStreams`, whose fresher values and latest frames take precedence.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from facegate.errors import NotFound, Unprocessable
from facegate.services.runtime import StoreRuntime
from facegate.services.schemas import (
    BoxPublic,
    StreamCreate,
    StreamPublic,
    StreamsPage,
    StreamTelemetry,
    StreamUpdate,
    TrackPublic,
)
from facegate.store.base import StreamCreate as StoredStream
from facegate.store.base import StreamRow, StreamStatus

# Schemes OpenCV's FFmpeg backend reads live video from. A `scheme://` source outside them (file://, ftp://,
# javascript:) is refused when added rather than failing later on some worker.
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(\S+)$")
_CAMERA = re.compile(r"^[0-9]{1,2}$")
# A status not renewed for this many reporting intervals means its process stopped reporting (dead, or the
# stream is moving to another worker).
STALE_INTERVALS = 3


class LiveStreams(Protocol):
    """The streams this process runs (stream.manager.StreamManager)."""

    def live_status(self, stream_id: str) -> StreamStatus | None: ...

    def latest_frame(self, stream_id: str) -> bytes | None: ...

    def wake(self) -> None:
        """Streams were added, removed, enabled or disabled: look at the store now rather than at the next poll."""
        ...


def check_source(source: str) -> str:
    """A file path, a URL of a live-video scheme, or a camera index; no control characters or surrounding
    blanks. Unprocessable(invalid_source) otherwise."""
    if source != source.strip() or any(ord(c) < 32 or ord(c) == 127 for c in source):
        raise Unprocessable("The source has surrounding blanks or control characters.", code="invalid_source")
    if _CAMERA.match(source):
        return source
    url = _URL.match(source)
    if url is not None:
        if url.group(1).lower() not in URL_SCHEMES:
            raise Unprocessable(
                f"Unsupported source scheme {url.group(1)!r}: use a file path, a camera index, or one of "
                + ", ".join(f"{s}://" for s in URL_SCHEMES),
                code="invalid_source",
            )
        return source
    if "://" in source:
        raise Unprocessable("The source is neither a URL nor a file path.", code="invalid_source")
    return source


def _options(body: StreamCreate) -> dict[str, Any]:
    options: dict[str, Any] = {"loop": body.loop}
    if body.sample_fps is not None:
        options["sample_fps"] = body.sample_fps
    return options


def add_stream(rt: StoreRuntime, body: StreamCreate, live: LiveStreams | None = None) -> StreamPublic:
    """Conflict(stream_name_taken); Unprocessable(invalid_source, invalid_name)."""
    name = body.name.strip()
    if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise Unprocessable("A stream name needs a visible character and no control characters.", code="invalid_name")
    row = rt.store.streams.create(StoredStream(name=name, source=check_source(body.source), options=_options(body)))
    if live is not None:
        live.wake()
    return to_public(row, live, stale_after=_stale_after(rt))


def list_streams(rt: StoreRuntime, live: LiveStreams | None = None) -> StreamsPage:
    stale_after = _stale_after(rt)
    return StreamsPage(items=[to_public(row, live, stale_after=stale_after) for row in rt.store.streams.list_streams()])


def get_stream(rt: StoreRuntime, stream_id: str, live: LiveStreams | None = None) -> StreamPublic:
    return to_public(_require(rt, stream_id), live, stale_after=_stale_after(rt))


def remove_stream(rt: StoreRuntime, stream_id: str, live: LiveStreams | None = None) -> None:
    """The process running it stops it at its next look at the store (at once when it is this one)."""
    rt.store.streams.delete(stream_id)
    if live is not None:
        live.wake()


def update_stream(
    rt: StoreRuntime, stream_id: str, body: StreamUpdate, live: LiveStreams | None = None
) -> StreamPublic:
    """Enable or disable a stream: the process running it stops it (or one starts it) at its next look at the
    store, at once when it is this one. NotFound(stream_not_found)."""
    row = rt.store.streams.set_enabled(stream_id, body.enabled)
    if live is not None:
        live.wake()
    return to_public(row, live, stale_after=_stale_after(rt))


def latest_frame(rt: StoreRuntime, stream_id: str, live: LiveStreams | None) -> bytes:
    """The JPEG of the stream's last analysed frame, when this process runs it; NotFound(no_frame) otherwise."""
    _require(rt, stream_id)
    frame = live.latest_frame(stream_id) if live is not None else None
    if frame is None:
        raise NotFound(
            "No frame of this stream here: it has not produced one yet, or another process runs it.", code="no_frame"
        )
    return frame


def report_status(rt: StoreRuntime, stream_id: str, status: StreamStatus) -> bool:
    """Write a running stream's status; False when the stream has been removed meanwhile."""
    return rt.store.streams.report(stream_id, status)


def telemetry(rt: StoreRuntime, live: LiveStreams | None = None) -> list[StreamTelemetry]:
    """Each stream's values for /metrics and the telemetry summary."""
    return [
        StreamTelemetry(
            id=s.id,
            name=s.name,
            state=s.state,
            fps=s.fps,
            lag_seconds=s.lag_seconds,
            frames=s.frames,
            dropped_frames=s.dropped_frames,
            worker=s.worker,
        )
        for s in list_streams(rt, live).items
    ]


def _require(rt: StoreRuntime, stream_id: str) -> StreamRow:
    row = rt.store.streams.get(stream_id)
    if row is None:
        raise NotFound(f"No stream with id {stream_id}.", code="stream_not_found")
    return row


def _stale_after(rt: StoreRuntime) -> timedelta:
    return timedelta(seconds=STALE_INTERVALS * rt.settings.streams.status_seconds)


def _track(track: dict[str, Any]) -> TrackPublic:
    return TrackPublic(
        track=str(track["track"]),
        box=BoxPublic.model_validate(track["box"]),
        person_id=track.get("person_id"),
        name=track.get("name"),
        distance=track.get("distance"),
    )


def to_public(row: StreamRow, live: LiveStreams | None, *, stale_after: timedelta) -> StreamPublic:
    status = (live.live_status(row.id) if live is not None else None) or row.status
    state = "pending"
    if status is not None:
        state = status.state
        if datetime.now(UTC) - status.at > stale_after:
            state = "stale"
    # A disabled stream runs nowhere, whatever its last status said (its process stops it within a poll).
    running = status if row.enabled else None
    return StreamPublic(
        id=row.id,
        name=row.name,
        source=row.source,
        sample_fps=row.options.get("sample_fps"),
        loop=bool(row.options.get("loop", False)),
        enabled=row.enabled,
        state=state if row.enabled else "disabled",
        fps=running.fps if running else 0.0,
        lag_seconds=running.lag_seconds if running else 0.0,
        frames=status.frames if status else 0,
        dropped_frames=status.dropped_frames if status else 0,
        error=status.error if status else None,
        worker=status.worker if status else None,
        status_at=status.at if status else None,
        tracks=[_track(t) for t in running.tracks] if running else [],
        created_at=row.created_at,
    )
