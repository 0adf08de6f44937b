"""services.streams: add/list/get/remove on SQLite and PostgreSQL, source and name checks, unique names, the
status a running process reports (and when it goes stale), telemetry values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facegate.errors import Conflict, NotFound, Unprocessable
from facegate.services import streams as streams_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import StreamCreate
from facegate.store.base import StreamStatus


def _status(*, at: datetime | None = None, state: str = "running") -> StreamStatus:
    return StreamStatus(
        state=state,
        fps=24.5,
        lag_seconds=0.12,
        frames=300,
        dropped_frames=7,
        error=None,
        tracks=[
            {
                "track": "t1",
                "box": {"left": 1, "top": 2, "width": 30, "height": 40},
                "person_id": None,
                "name": None,
                "distance": None,
            }
        ],
        worker="w-1",
        at=at or datetime.now(UTC),
    )


def test_add_list_get_remove(runtime: Runtime) -> None:
    added = streams_service.add_stream(
        runtime, StreamCreate(source="/videos/door.mp4", name="door", sample_fps=2.5, loop=True)
    )
    assert (added.name, added.source, added.sample_fps, added.loop) == ("door", "/videos/door.mp4", 2.5, True)
    assert added.state == "pending" and added.worker is None and added.tracks == []
    other = streams_service.add_stream(runtime, StreamCreate(source="rtsp://cam.local:554/s1", name="yard"))
    assert other.sample_fps is None and other.loop is False

    page = streams_service.list_streams(runtime)
    assert [s.name for s in page.items] == ["door", "yard"]
    assert streams_service.get_stream(runtime, added.id).id == added.id

    streams_service.remove_stream(runtime, added.id)
    assert [s.name for s in streams_service.list_streams(runtime).items] == ["yard"]
    with pytest.raises(NotFound) as missing:
        streams_service.get_stream(runtime, added.id)
    assert missing.value.code == "stream_not_found"
    with pytest.raises(NotFound):
        streams_service.remove_stream(runtime, added.id)


def test_names_are_unique(runtime: Runtime) -> None:
    streams_service.add_stream(runtime, StreamCreate(source="0", name="desk"))
    with pytest.raises(Conflict) as clash:
        streams_service.add_stream(runtime, StreamCreate(source="1", name="desk"))
    assert clash.value.code == "stream_name_taken"
    # Surrounding blanks are not a different name.
    with pytest.raises(Conflict):
        streams_service.add_stream(runtime, StreamCreate(source="1", name=" desk "))
    assert len(streams_service.list_streams(runtime).items) == 1


@pytest.mark.parametrize(
    "source",
    ["file:///etc/passwd", "ftp://host/v.mp4", "javascript://x", " /v.mp4", "/v.mp4\n", "a\x00b", "://nothing"],
)
def test_bad_sources_are_refused(runtime: Runtime, source: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        streams_service.add_stream(runtime, StreamCreate(source=source, name="x"))
    assert refused.value.code == "invalid_source"
    assert streams_service.list_streams(runtime).items == []


@pytest.mark.parametrize("source", ["0", "12", "rtsp://u:p@10.0.0.2/live", "HTTPS://cam/mjpeg", "clips/a b.mp4"])
def test_sane_sources_are_taken(runtime: Runtime, source: str) -> None:
    assert streams_service.add_stream(runtime, StreamCreate(source=source, name="s")).source == source


@pytest.mark.parametrize("name", ["   ", "tab\there", "nul\x00"])
def test_bad_names_are_refused(runtime: Runtime, name: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        streams_service.add_stream(runtime, StreamCreate(source="0", name=name))
    assert refused.value.code == "invalid_name"


def test_sample_fps_bounds() -> None:
    for bad in (0.0, -1.0, 60.5):
        with pytest.raises(ValueError):
            StreamCreate(source="0", name="s", sample_fps=bad)
    assert StreamCreate(source="0", name="s", sample_fps=60.0).sample_fps == 60.0


def test_reported_status_is_listed_and_goes_stale(runtime: Runtime) -> None:
    stream = streams_service.add_stream(runtime, StreamCreate(source="0", name="cam"))
    assert streams_service.report_status(runtime, stream.id, _status())

    shown = streams_service.get_stream(runtime, stream.id)
    assert (shown.state, shown.fps, shown.lag_seconds, shown.frames, shown.dropped_frames, shown.worker) == (
        "running",
        24.5,
        0.12,
        300,
        7,
        "w-1",
    )
    assert [t.track for t in shown.tracks] == ["t1"] and shown.tracks[0].box.width == 30
    [values] = streams_service.telemetry(runtime)
    assert (values.name, values.state, values.fps, values.dropped_frames) == ("cam", "running", 24.5, 7)

    # A worker that stopped reporting: the status is shown as stale, with the last values kept.
    old = datetime.now(UTC) - timedelta(seconds=3 * runtime.settings.streams.status_seconds + 1)
    streams_service.report_status(runtime, stream.id, _status(at=old))
    assert streams_service.get_stream(runtime, stream.id).state == "stale"

    streams_service.remove_stream(runtime, stream.id)
    assert not streams_service.report_status(runtime, stream.id, _status())


def test_frame_needs_a_live_stream_here(runtime: Runtime) -> None:
    stream = streams_service.add_stream(runtime, StreamCreate(source="0", name="cam"))
    with pytest.raises(NotFound) as none:
        streams_service.latest_frame(runtime, stream.id, None)
    assert none.value.code == "no_frame"
    with pytest.raises(NotFound) as unknown:
        streams_service.latest_frame(runtime, "nope", None)
    assert unknown.value.code == "stream_not_found"
