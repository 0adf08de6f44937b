"""stream.tracker: a face keeps its track id while it moves, a new face gets a new one."""

from __future__ import annotations

from facegate.stream.tracker import FaceTracker
from facegate.vision.engine import Box


def test_a_moving_face_keeps_its_id_and_a_new_face_gets_another() -> None:
    tracker = FaceTracker(max_distance=0.8, keep_updates=5)
    first = tracker.update([Box(100, 100, 60, 60)])
    assert len(first) == 1 and first[0].detection == 0
    track = first[0].id
    for step in range(1, 6):  # 8 px per frame: the IoU with the prediction stays high
        [moved] = tracker.update([Box(100 + 8 * step, 100, 60, 60)])
        assert moved.id == track
        assert moved.box == Box(100 + 8 * step, 100, 60, 60)

    both = tracker.update([Box(400, 300, 50, 50), Box(148, 100, 60, 60)])
    ids = {t.detection: t.id for t in both}
    assert ids[1] == track
    assert ids[0] != track


def test_a_track_is_predicted_while_undetected_then_dropped() -> None:
    tracker = FaceTracker(max_distance=0.8, keep_updates=3)
    for step in range(4):
        tracker.update([Box(100 + 10 * step, 50, 40, 40)])
    [predicted] = tracker.update([])
    assert predicted.detection is None
    assert predicted.box.left > 120  # carried on along its motion
    for _ in range(5):
        remaining = tracker.update([])
    assert remaining == []


def test_far_apart_detections_do_not_continue_a_track() -> None:
    tracker = FaceTracker(max_distance=0.8, keep_updates=5)
    [a] = tracker.update([Box(0, 0, 40, 40)])
    tracked = tracker.update([Box(300, 300, 40, 40)])
    assert [t.id for t in tracked if t.detection == 0] != [a.id]
