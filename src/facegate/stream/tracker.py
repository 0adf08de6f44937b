"""Face tracking across frames with norfair: a detection continues the track whose Kalman-predicted box is
nearest, in face widths (so a small face that moved a little between two sampled frames is still matched, where
the boxes' IoU would already be low)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from norfair import Detection, Tracker
from norfair.distances import VectorizedDistance

from facegate.vision.engine import Box


@dataclass(frozen=True)
class TrackedBox:
    id: int  # the tracker's id: unique within one FaceTracker
    box: Box  # the detection it matched in this frame, else the predicted box
    detection: int | None  # index into the boxes given to `update`, None when only predicted


def _points(box: Box) -> np.ndarray:
    return np.array([[box.left, box.top], [box.left + box.width, box.top + box.height]], dtype=np.float64)


def face_distances(candidates: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """How far each detection is from each track's predicted box (rows of x1, y1, x2, y2): the move of the
    centre in face sizes (the larger box's longer side) plus the change of scale (|log| of the size ratio)."""
    c, o = candidates[:, None, :], objects[None, :, :]
    size_c = np.maximum(np.maximum(c[..., 2] - c[..., 0], c[..., 3] - c[..., 1]), 1.0)
    size_o = np.maximum(np.maximum(o[..., 2] - o[..., 0], o[..., 3] - o[..., 1]), 1.0)
    dx = (c[..., 0] + c[..., 2] - o[..., 0] - o[..., 2]) / 2
    dy = (c[..., 1] + c[..., 3] - o[..., 1] - o[..., 3]) / 2
    moved = np.hypot(dx, dy) / np.maximum(size_c, size_o)
    result: np.ndarray = moved + np.abs(np.log(size_c / size_o))
    return result


def _box(points: np.ndarray) -> Box:
    (x1, y1), (x2, y2) = points
    return Box(round(x1), round(y1), max(1, round(x2 - x1)), max(1, round(y2 - y1)))


class FaceTracker:
    """`max_distance`: the largest `face_distances` value that continues a track. `keep_updates`: updates a
    track survives without a detection (the pipeline decides itself when a track has left, in media time)."""

    def __init__(self, *, max_distance: float, keep_updates: int) -> None:
        self._tracker = Tracker(
            distance_function="iou",  # replaced below: the constructor takes only names and scalar functions
            distance_threshold=max_distance,
            hit_counter_max=max(1, keep_updates),
            initialization_delay=0,  # the pipeline confirms a track by its embedded frames, not here
        )
        self._tracker.distance_function = VectorizedDistance(face_distances)
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
