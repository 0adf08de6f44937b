"""stream.pipeline on the real dev clips: one `appeared` and one `left` per track, the identity voted over
frames, one match-history row per track (with its snapshot), stats and the latest frame."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from facegate.events.base import Event
from facegate.services import enroll as enroll_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.base import MatchFilter
from facegate.stream.pipeline import Pipeline, StreamOptions
from facegate.stream.sources import SourceError

HAMILTON_FRAMES = 275  # video.csv


def enroll(rt: Runtime, photo: Path, name: str) -> str:
    return enroll_service.enroll(rt, [Upload(photo.name, photo.read_bytes())], name=name).person.id


def run(
    rt: Runtime, source: Path | str, *, name: str = "cam", stop: threading.Event | None = None, **options: object
) -> tuple[Pipeline, list[dict[str, object]]]:
    pipeline = Pipeline(
        rt,
        stream_id=f"id-{name}",
        name=name,
        source=str(source),
        options=StreamOptions.from_settings(rt.settings.streams, **options),
    )
    with rt.events.hub.subscribe() as events:
        pipeline.run(stop or threading.Event())
        bodies = [e.body() for e in iter(lambda: events.get(0), None) if isinstance(e, Event)]
    return pipeline, bodies


def check_one_pair_per_track(bodies: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Every announced track left exactly once, after it appeared; returns the `left` events by track."""
    appeared = [b["track"] for b in bodies if b["type"] == "appeared"]
    left = [b["track"] for b in bodies if b["type"] == "left"]
    assert len(appeared) == len(set(appeared))
    assert sorted(appeared) == sorted(left)
    for track in appeared:
        order = [b["type"] for b in bodies if b["track"] == track]
        assert order == ["appeared", "left"]
    return {str(b["track"]): b for b in bodies if b["type"] == "left"}


def test_hamilton_names_lin_manuel_miranda_once_per_track(runtime: Runtime, dev: Path) -> None:
    lin = enroll(runtime, dev / "lin_manuel_miranda" / "1.png", "Lin-Manuel Miranda")
    pipeline, bodies = run(runtime, dev / "video" / "short_hamilton_clip.mp4", name="stage")

    named = [b for b in bodies if b["type"] == "appeared" and b["person_id"] == lin]
    assert named, bodies
    first = named[0]
    assert first["name"] == "Lin-Manuel Miranda" and first["stream"] == "stage"
    assert isinstance(first["distance"], float) and first["distance"] <= runtime.engine.info.threshold
    assert isinstance(first["confidence"], float) and 0.5 <= first["confidence"] <= 1.0
    assert set(first["box"]) == {"left", "top", "width", "height"}  # type: ignore[arg-type]
    assert first["match_id"] is None and first["first_seen"] <= first["last_seen"]  # type: ignore[operator]
    # Nobody else is enrolled: every other named track is him too.
    assert {b["person_id"] for b in bodies} <= {lin, None}

    left = check_one_pair_per_track(bodies)
    rows, total = runtime.store.list_matches(MatchFilter(), limit=100, offset=0)
    video_rows = [r for r in rows if r.source == "video:stage"]
    assert total == len(video_rows) == len(left)  # one row per track, nothing per frame
    by_track = {r.request_id: r for r in video_rows}
    assert set(by_track) == set(left)
    for track, body in left.items():
        row = by_track[track]
        assert body["match_id"] == row.id
        assert row.person_id == body["person_id"]
        assert row.crop_key is not None and runtime.blobs.get(row.crop_key)[:2] == b"\xff\xd8"  # the snapshot
    assert any(r.person_id == lin for r in video_rows)

    stats = pipeline.stats()
    assert stats.state == "ended" and stats.error is None
    assert stats.frames == HAMILTON_FRAMES and stats.dropped_frames == 0
    assert 45 <= stats.analysed_frames <= 55  # 10 s at 5 frames per second
    assert stats.tracks == []  # all left at the end
    jpeg = pipeline.latest_frame()
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"


@pytest.mark.slow
def test_crowd_names_nobody(runtime: Runtime, dev: Path, identities: dict[str, list[Path]]) -> None:
    for identity, photos in identities.items():
        enroll(runtime, photos[0], identity)
    _, bodies = run(runtime, dev / "video" / "crowd_walking.mp4", name="street")
    check_one_pair_per_track(bodies)
    assert any(b["type"] == "appeared" for b in bodies)  # passers-by are seen, as unknown people
    assert [b for b in bodies if b["person_id"] is not None] == []
    assert all(b["name"] is None and b["distance"] is None for b in bodies)


@pytest.mark.slow
def test_stopping_a_live_stream_closes_its_open_tracks(runtime: Runtime, dev: Path) -> None:
    enroll(runtime, dev / "lin_manuel_miranda" / "1.png", "lin")
    stop = threading.Event()
    pipeline = Pipeline(
        runtime,
        stream_id="live",
        name="live",
        source=str(dev / "video" / "short_hamilton_clip.mp4"),
        options=StreamOptions.from_settings(runtime.settings.streams, realtime=True, loop=True),
    )
    with runtime.events.hub.subscribe() as events:
        worker = threading.Thread(target=pipeline.run, args=(stop,))
        worker.start()
        deadline = time.monotonic() + 30
        while not pipeline.stats().tracks and time.monotonic() < deadline:
            time.sleep(0.1)
        running = pipeline.stats()
        assert running.state == "running" and running.tracks, running
        assert running.lag_seconds < 1.0 and running.fps > 10
        stop.set()
        worker.join(timeout=20)
        assert not worker.is_alive()
        bodies = [e.body() for e in iter(lambda: events.get(0), None) if isinstance(e, Event)]
    check_one_pair_per_track(bodies)
    assert pipeline.stats().state == "ended"


def test_a_missing_source_fails_clearly(runtime: Runtime, tmp_path: Path) -> None:
    pipeline = Pipeline(runtime, stream_id="x", name="x", source=str(tmp_path / "gone.mp4"), options=StreamOptions())
    with pytest.raises(SourceError) as raised:
        pipeline.run(threading.Event())
    assert raised.value.code == "source_not_found"
    stats = pipeline.stats()
    assert stats.state == "failed" and stats.error is not None and "gone.mp4" in stats.error
    assert pipeline.latest_frame() is None
