"""stream.identity: a track's identity is a vote over the distances of its best-quality frames."""

from __future__ import annotations

import numpy as np

from facegate.services.schemas import Candidate
from facegate.stream.identity import TrackIdentity
from facegate.vision.analysis import FaceAnalysis
from facegate.vision.engine import Box

THRESHOLD = 0.5


def face(quality: float) -> FaceAnalysis:
    return FaceAnalysis(
        box=Box(0, 0, 50, 50),
        detector_score=0.9,
        sharpness=100.0,
        quality=quality,
        embedding=np.zeros(4, dtype=np.float32),
        crop_jpeg=b"jpeg",
    )


def cand(person: str, distance: float) -> Candidate:
    return Candidate(person_id=person, name=person.upper(), distance=distance, confidence=0.5)


def test_the_best_frames_decide_not_the_blurred_ones() -> None:
    track = TrackIdentity(keep=10)
    for _ in range(5):  # turned away, small, blurred: far from everyone
        track.add(face(0.3), [cand("ann", 1.0)])
    for d in (0.35, 0.42, 0.38):  # three good frames
        track.add(face(0.9), [cand("ann", d), cand("bob", 0.8)])
    decision = track.decide(THRESHOLD, min_observations=3)
    assert decision.person_id == "ann" and decision.name == "ANN"
    # The best half of the frames vote: the three good ones and one far (capped at 1.5 x threshold).
    assert decision.distance == 0.4
    assert decision.confidence is not None and decision.confidence > 0.5
    assert decision.observations == 8
    assert track.best is not None and track.best.quality == 0.9


def test_one_close_frame_does_not_name_a_track() -> None:
    track = TrackIdentity(keep=10)
    track.add(face(0.9), [cand("ann", 0.2)])
    for _ in range(4):
        track.add(face(0.9), [cand("bob", 0.9)])
    decision = track.decide(THRESHOLD, min_observations=3)
    assert decision.person_id is None and decision.distance is None


def test_unknown_when_nobody_is_close_or_nobody_is_enrolled() -> None:
    far = TrackIdentity(keep=10)
    for _ in range(4):
        far.add(face(0.8), [cand("ann", 0.7)])
    assert far.decide(THRESHOLD, 3).person_id is None
    empty = TrackIdentity(keep=10)
    for _ in range(4):
        empty.add(face(0.8), [])
    assert empty.decide(THRESHOLD, 3).person_id is None


def test_memory_is_bounded_by_keep() -> None:
    track = TrackIdentity(keep=3)
    for i in range(50):
        track.add(face(i / 50), [cand(f"p{i}", 0.9)])
    assert len(track.observations) == 3
    assert [o.quality for o in track.observations] == [0.98, 0.96, 0.94]
    assert track.seen == 50
    assert len(track.names) <= 3


def test_a_rejected_lookalike_is_no_vote_for_that_person() -> None:
    """A face a user said is "not Ann" (identify flags Ann as a rejected lookalike) never names a track Ann."""
    track = TrackIdentity(keep=10)
    for d in (0.35, 0.36, 0.34):
        lookalike = cand("ann", d).model_copy(update={"rejected_lookalike": True})
        track.add(face(0.9), [lookalike, cand("bob", 0.45)])
    decision = track.decide(THRESHOLD, min_observations=3)
    assert decision.person_id == "bob"
