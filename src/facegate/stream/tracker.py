"""Face tracking across frames with norfair: a detection continues the track whose Kalman-predicted box is
nearest, in face widths (so a small face that moved a little between two sampled frames is still matched, where
the boxes' IoU would already be low)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from norfair import Detection, TrackedObject, Tracker

from facegate.vision.engine import Box


@dataclass(frozen=True)
class TrackedBox:
    id: int  # the tracker's id: unique within one FaceTracker
    box: Box  # the detection it matched in this frame, else the predicted box
    detection: int | None  # index into the boxes given to `update`, None when only predicted


def _points(box: Box) -> np.ndarray:
    return np.array([[box.left, box.top], [box.left + box.width, box.top + box.height]], dtype=np.float64)


def face_distance(detection: Detection, tracked: TrackedObject) -> float:
    """How far a detection is from a track's predicted box: the move of the centre in face sizes (the larger
    box's longer side) plus the change of scale (|log| of the size ratio)."""
    (x1, y1), (x2, y2) = detection.points
    (a1, b1), (a2, b2) = tracked.estimate
    size_d, size_t = max(x2 - x1, y2 - y1, 1.0), max(a2 - a1, b2 - b1, 1.0)
    moved = math.hypot((x1 + x2 - a1 - a2) / 2, (y1 + y2 - b1 - b2) / 2) / max(size_d, size_t)
    return float(moved + abs(math.log(size_d / size_t)))


def _box(points: np.ndarray) -> Box:
    (x1, y1), (x2, y2) = points
    return Box(round(x1), round(y1), max(1, round(x2 - x1)), max(1, round(y2 - y1)))


class FaceTracker:
    """`max_distance`: the largest `face_distance` that continues a track. `keep_updates`: updates a track survives
    without a detection (the pipeline decides itself when a track has left, in media time)."""

    def __init__(self, *, max_distance: float, keep_updates: int) -> None:
        self._tracker = Tracker(
            distance_function=face_distance,
            distance_threshold=max_distance,
            hit_counter_max=max(1, keep_updates),
            initialization_delay=0,  # the pipeline confirms a track by its embedded frames, not here
        )
        self._updates = 0

    def update(self, boxes: list[Box]) -> list[TrackedBox]:
        """One analysed frame's detections -> the live tracks (matched, or predicted where not detected)."""
        self._updates += 1
        # norfair keeps a copy of the detection a track last matched: its data says from which update it came.
        detections = [Detection(_points(box), data=(self._updates, i)) for i, box in enumerate(boxes)]
        tracked = []
        for obj in self._tracker.update(detections):
            if obj.id is None:  # still initializing (never with initialization_delay=0)
                continue
            update, index = obj.last_detection.data
            if update == self._updates:
                tracked.append(TrackedBox(obj.id, boxes[index], index))
            else:
                tracked.append(TrackedBox(obj.id, _box(obj.estimate), None))
        return tracked
