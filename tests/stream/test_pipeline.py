"""stream.pipeline on the real dev clips: one `appeared` and one `left` per track (and `updated` when the vote
changes who it is), the identity voted over frames, one match-history row per track (with its snapshot, written
at `appeared` and rewritten in place), stats and the latest frame."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.events.base import Event
from facegate.services import enroll as enroll_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.base import MatchFilter
from facegate.stream.identity import Decision, TrackIdentity
from facegate.stream.pipeline import Pipeline, StreamOptions, _Track
from facegate.stream.sources import SourceError
from facegate.vision.engine import Box

HAMILTON_FRAMES = 275  # video.csv


def enroll(rt: Runtime, photo: Path, name: str) -> str:
    return enroll_service.enroll(rt, [Upload(photo.name, photo.read_bytes())], name=name).person.id


def run(
    rt: Runtime,
    source: Path | str,
    *,
    name: str = "cam",
    stop: threading.Event | None = None,
    on_event: Callable[[Event], None] | None = None,
    **options: object,
) -> tuple[Pipeline, list[dict[str, object]]]:
    """`on_event`: called with each event on the pipeline's thread as it is published (the pipeline waits)."""
    pipeline = Pipeline(
        rt,
        stream_id=f"id-{name}",
        name=name,
        source=str(source),
        options=StreamOptions.from_settings(rt.settings.streams, **options),
    )

    def deliver() -> None:
        while on_event is not None and (event := spy.get(0)) is not None:
            on_event(event)

    with rt.events.hub.subscribe() as events, rt.events.hub.subscribe(deliver) as spy:
        pipeline.run(stop or threading.Event())
        bodies = [e.body() for e in iter(lambda: events.get(0), None) if isinstance(e, Event)]
    return pipeline, bodies


def check_one_pair_per_track(bodies: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Every announced track left exactly once, after it appeared and any `updated`; each event of a track says
    who the previous one did not, `left` the last said; all carry the track's one history row. Returns the
    `left` events by track."""
    appeared = [b["track"] for b in bodies if b["type"] == "appeared"]
    left = [b["track"] for b in bodies if b["type"] == "left"]
    assert len(appeared) == len(set(appeared))
    assert sorted(appeared) == sorted(left)
    for track in appeared:
        events = [b for b in bodies if b["track"] == track]
        order = [b["type"] for b in events]
        assert order == ["appeared", *["updated"] * (len(order) - 2), "left"], order
        said = [b["person_id"] for b in events]
        assert all(a != b for a, b in itertools.pairwise(said[:-1])), said
        assert said[-1] == said[-2], said
        match_ids = {b["match_id"] for b in events}
        assert len(match_ids) == 1 and isinstance(events[0]["match_id"], int), events
    return {str(b["track"]): b for b in bodies if b["type"] == "left"}


def check_crops(rt: Runtime) -> None:
    """Every crop file is a history row's, every row's crop is there, and no blob write is left pending."""
    root = rt.settings.blob_path
    files = {p.relative_to(root).as_posix() for p in (root / "crops").rglob("*.jpg")}
    rows, _ = rt.store.list_matches(MatchFilter(), limit=1000, offset=0)
    assert files == {r.crop_key for r in rows}
    assert rt.store.pending_blobs(datetime.now(UTC) + timedelta(days=1)) == []


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
    assert isinstance(first["match_id"], int) and first["first_seen"] <= first["last_seen"]  # type: ignore[operator]
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
    check_crops(runtime)

    stats = pipeline.stats()
    assert stats.state == "ended" and stats.error is None
    assert stats.frames == HAMILTON_FRAMES and stats.dropped_frames == 0
    assert 45 <= stats.analysed_frames <= 55  # 10 s at 5 frames per second
    assert stats.tracks == []  # all left at the end
    jpeg = pipeline.latest_frame()
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"


def test_a_track_named_after_it_appeared_is_updated_in_its_one_row(runtime: Runtime, dev: Path) -> None:
    """Nobody is enrolled when the first track is announced; Lin-Manuel Miranda is enrolled right then. His
    track, announced as unknown, is named by the vote over its later frames: `updated` says so with the track's
    match_id, `left` too, and the track's one history row now names him, its crop replaced by the best frame's
    without a stray file."""
    enrolled: list[str] = []

    def enroll_him_at_the_first_event(event: Event) -> None:
        if not enrolled:
            enrolled.append(enroll(runtime, dev / "lin_manuel_miranda" / "1.png", "Lin-Manuel Miranda"))

    _, bodies = run(
        runtime,
        dev / "video" / "short_hamilton_clip.mp4",
        name="stage",
        on_event=enroll_him_at_the_first_event,
        reembed_seconds=0.0,  # every analysed frame votes, so his later frames outnumber the first ones
    )
    [lin] = enrolled
    assert (bodies[0]["type"], bodies[0]["person_id"]) == ("appeared", None)
    left = check_one_pair_per_track(bodies)
    [updated] = [b for b in bodies if b["type"] == "updated"]
    his = [b for b in bodies if b["track"] == updated["track"]]
    assert [(b["type"], b["person_id"], b["name"]) for b in his] == [
        ("appeared", None, None),
        ("updated", lin, "Lin-Manuel Miranda"),
        ("left", lin, "Lin-Manuel Miranda"),
    ]
    assert isinstance(updated["distance"], float) and updated["distance"] <= runtime.engine.info.threshold
    row = runtime.store.get_match(his[0]["match_id"])  # type: ignore[arg-type]
    assert row is not None and (row.person_id, row.request_id) == (lin, updated["track"])
    assert row.distance == his[-1]["distance"]
    rows, total = runtime.store.list_matches(MatchFilter(), limit=100, offset=0)
    assert total == len(left) and {r.request_id for r in rows} == set(left)
    check_crops(runtime)


def test_a_person_deleted_while_in_view_leaves_one_unknown_row(runtime: Runtime, dev: Path) -> None:
    """His row goes with him (history follows the person); the track still leaves with one row, unknown."""
    lin = enroll(runtime, dev / "lin_manuel_miranda" / "1.png", "Lin-Manuel Miranda")
    deleted: list[object] = []  # his track

    def delete_him_once_named(event: Event) -> None:
        if not deleted and event.type == "appeared" and event.data["person_id"] == lin:
            deleted.append(event.data["track"])
            people_service.delete_person(runtime, lin)

    _, bodies = run(runtime, dev / "video" / "short_hamilton_clip.mp4", name="stage", on_event=delete_him_once_named)
    [track] = deleted
    of_track = [b for b in bodies if b["track"] == track]
    assert (of_track[-1]["type"], of_track[-1]["person_id"]) == ("left", None)
    assert [b for b in bodies if b["type"] != "appeared" and b["person_id"] == lin] == []
    rows, _ = runtime.store.list_matches(MatchFilter(), limit=100, offset=0)
    [row] = [r for r in rows if r.request_id == track]
    assert row.person_id is None and row.id == of_track[-1]["match_id"]
    check_crops(runtime)


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


def test_the_frame_shows_boxes_only_of_faces_detected_in_it(runtime: Runtime) -> None:
    """The live view's frame: a track still kept while its face is not detected (turned away: the tracker only
    predicts its box) is not boxed on a frame it is not in; the one detected in that frame is."""
    pipeline = Pipeline(
        runtime, stream_id="id-x", name="x", source="0", options=StreamOptions.from_settings(runtime.settings.streams)
    )
    now = datetime.now(UTC)
    here, gone = Box(20, 20, 40, 40), Box(100, 20, 40, 40)
    for key, box, last_seen in (("a", here, 2.0), ("b", gone, 1.4)):
        track = _Track(key, TrackIdentity(keep=5), box, 0.0, last_seen, now, now, appeared=True)
        track.decision = Decision(None, None, None, None, 3)
        pipeline._tracks[len(pipeline._tracks)] = track
    pipeline._last_frame, pipeline._last_frame_ts = np.zeros((80, 160, 3), np.uint8), 2.0

    jpeg = pipeline.latest_frame()
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    def drawn(box: Box) -> bool:  # the box's left edge is coloured
        return bool(image[box.top + 5 : box.top + box.height - 5, box.left].max() > 100)

    assert drawn(here) and not drawn(gone)
