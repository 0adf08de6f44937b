"""services.enroll.pick_face: which face of a photo is enrolled, and when a photo with several faces is refused.

Synthetic analyses cover each branch of the dominance rule; real photos check it where it was measured
(bench/enroll_dominance.py): LFW crops with a bystander are enrolled, group photos are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegate.config import EnrollSettings
from facegate.services.enroll import centre_offset, cut_by_edge, dominates, pick_face
from facegate.vision.analysis import FaceAnalysis, ImageAnalysis
from facegate.vision.engine import Box
from facegate.vision.pool import EnginePool

RULES = EnrollSettings()


def _analysis(
    *boxes: Box, width: int = 250, height: int = 250, score: float = 0.92, sharp: float = 120.0
) -> ImageAnalysis:
    """A photo whose faces are `boxes` (largest first, as analyze sorts them); only the largest is analysed."""
    face = FaceAnalysis(
        box=boxes[0],
        detector_score=score,
        sharpness=sharp,
        quality=0.9,
        embedding=np.zeros(128, dtype=np.float32),
        crop_jpeg=None,
    )
    return ImageAnalysis(width=width, height=height, faces=[face], boxes=list(boxes))


# LFW-like 250x250 crop: the subject's box centred (offset ~0.03), ~90x120 px.
SUBJECT = Box(80, 65, 90, 125)


def test_one_face_is_enrolled() -> None:
    analysis = _analysis(SUBJECT)
    assert pick_face(analysis, RULES) == (analysis.faces[0], None)


def test_no_face() -> None:
    assert pick_face(ImageAnalysis(width=250, height=250, faces=[], boxes=[]), RULES) == (None, "no_face")


def test_a_single_face_still_meets_the_quality_gates() -> None:
    assert pick_face(_analysis(SUBJECT, sharp=1.0), RULES) == (None, "blurry")
    # ... and so does a dominant face among others.
    assert pick_face(_analysis(SUBJECT, Box(0, 0, 40, 50), score=0.5), RULES) == (None, "low_quality")


def test_centre_offset_and_edge_cut() -> None:
    assert centre_offset(Box(100, 100, 50, 50), 250, 250) == 0.0
    assert centre_offset(Box(0, 100, 50, 50), 250, 250) == pytest.approx(0.4)
    assert centre_offset(Box(0, 0, 10, 10), 1000, 500) == pytest.approx(np.hypot(0.495, 0.49))
    assert not cut_by_edge(Box(1, 1, 248, 248), 250, 250)
    assert cut_by_edge(Box(0, 50, 50, 50), 250, 250)
    assert cut_by_edge(Box(200, 50, 50, 50), 250, 250)
    assert cut_by_edge(Box(50, 200, 50, 50), 250, 250)


def test_a_much_larger_face_dominates_wherever_it_is() -> None:
    # Off-centre (offset 0.3), 1.5x the next face's area, the next face nearer the centre.
    largest, other = Box(10, 60, 90, 120), Box(120, 110, 60, 120)
    assert largest.area == 1.5 * other.area
    assert centre_offset(largest, 250, 250) > RULES.central_offset
    assert dominates(_analysis(largest, other), RULES)
    assert not dominates(_analysis(largest, Box(120, 110, 61, 120)), RULES)  # just under 1.5x


def test_a_central_face_beats_one_off_centre_face_of_comparable_size() -> None:
    # calib/paul_mccartney/3.jpg: subject 0.095 from the centre, a woman 1.06x smaller at 0.34.
    rival = Box(163, 103, 81, 111)
    subject = Box(60, 74, 84, 113)
    assert dominates(_analysis(subject, rival), RULES)
    face, reason = pick_face(_analysis(subject, rival), RULES)
    assert reason is None and face is not None and face.box == subject


def test_the_centrality_rule_can_be_turned_off_or_made_stricter() -> None:
    analysis = _analysis(Box(60, 74, 84, 113), Box(163, 103, 81, 111))
    assert not dominates(analysis, EnrollSettings(central_offset=0.0))
    # central_weight x area must still reach dominant_ratio x the rival's area.
    assert not dominates(analysis, EnrollSettings(central_weight=1.4))
    assert not dominates(analysis, EnrollSettings(dominant_ratio=50.0))
    assert pick_face(analysis, EnrollSettings(multiple_faces="reject")) == (None, "multiple_faces")


def test_a_largest_face_off_centre_is_refused_next_to_a_comparable_one() -> None:
    # calib/winona_ryder/4.jpg: the largest box is a bystander at the right (0.35 from the centre) and the
    # subject, 1.12x smaller, is in the centre. Only the largest face is analysed, so the photo is refused.
    assert pick_face(_analysis(Box(170, 79, 77, 144), Box(93, 67, 84, 118)), RULES) == (None, "multiple_faces")


def test_two_faces_near_the_centre_are_refused() -> None:
    # dev/multi/obama_and_biden.jpg (2000x1428): the largest face 0.16 from the centre, the next 1.05x
    # smaller at 0.20. Both central enough to be the subject: ambiguous.
    analysis = _analysis(Box(758, 396, 178, 248), Box(1143, 368, 181, 232), width=2000, height=1428)
    assert pick_face(analysis, RULES) == (None, "multiple_faces")
    # Even with a subject well inside the central zone, a rival must lie central_margin farther out.
    assert not dominates(_analysis(Box(100, 70, 60, 90), Box(140, 75, 55, 90)), RULES)


def test_a_central_face_among_several_comparable_ones_is_refused() -> None:
    # A group: the middle person is slightly the largest, two neighbours comparable and off-centre.
    analysis = _analysis(Box(100, 80, 50, 70), Box(20, 80, 48, 70), Box(180, 80, 48, 70))
    assert centre_offset(analysis.boxes[0], 250, 250) < RULES.central_offset
    assert pick_face(analysis, RULES) == (None, "multiple_faces")
    # Small faces do not count as rivals: with the neighbours under 1/1.5 of its area the subject dominates.
    assert dominates(_analysis(Box(100, 80, 50, 70), Box(20, 80, 40, 55), Box(180, 80, 40, 55)), RULES)


def test_an_edge_cut_face_dominates_only_in_the_centre() -> None:
    # A selfie's corner: the largest face is cut by the edge far from the centre, never the subject.
    bystander = Box(0, 0, 120, 150)
    assert not dominates(_analysis(bystander, Box(150, 120, 40, 50)), RULES)
    # A close-up / aligned crop: the subject's box touches the border but is centred.
    close_up = Box(30, 0, 190, 250)
    assert dominates(_analysis(close_up, Box(0, 200, 40, 50)), RULES)
    assert dominates(_analysis(Box(60, 0, 130, 250), Box(200, 20, 50, 120)), RULES)


# Real photos, analysed as enroll does.


def _analyze(pool: EnginePool, path: Path) -> ImageAnalysis:
    return pool.analyze(path.read_bytes(), max_pixels=40_000_000, max_faces=1, crops=False)


@pytest.mark.parametrize(
    "photo", ["two_people.jpg", "obama_and_biden.jpg", "kit_with_rose.jpg", "couple.jpg", "longoria-cooper.jpg"]
)
def test_group_photos_are_refused(opencv_pool: EnginePool, dev: Path, photo: str) -> None:
    analysis = _analyze(opencv_pool, dev / "multi" / photo)
    assert len(analysis.boxes) >= 2
    assert pick_face(analysis, RULES) == (None, "multiple_faces")


def test_a_photo_with_a_small_background_face_is_enrolled(opencv_pool: EnginePool, dev: Path) -> None:
    analysis = _analyze(opencv_pool, dev / "arnold_schwarzenegger" / "7.jpg")
    assert len(analysis.boxes) == 2
    face, reason = pick_face(analysis, RULES)
    assert reason is None and face is not None
    assert centre_offset(face.box, analysis.width, analysis.height) < 0.1


@pytest.fixture(scope="module")
def calib(dev: Path) -> Path:
    path = dev.parent / "calib"
    if not path.is_dir():
        pytest.skip(f"calibration face set not found at {path}")
    return path


@pytest.mark.parametrize("photo", ["paul_mccartney/3.jpg", "diana_krall/6.jpg", "elizabeth_smart/2.jpg"])
def test_a_centred_subject_beside_a_comparable_bystander_is_enrolled(
    opencv_pool: EnginePool, calib: Path, photo: str
) -> None:
    # Refused before the centrality rule (area ratio 1.06-1.17 < 1.5); the subject is LFW's central face.
    analysis = _analyze(opencv_pool, calib / photo)
    assert analysis.boxes[0].area < RULES.dominant_ratio * analysis.boxes[1].area
    face, reason = pick_face(analysis, RULES)
    assert reason is None and face is not None
    assert centre_offset(face.box, analysis.width, analysis.height) < 0.1


def test_a_photo_whose_largest_face_is_a_bystander_is_refused(opencv_pool: EnginePool, calib: Path) -> None:
    analysis = _analyze(opencv_pool, calib / "winona_ryder" / "4.jpg")
    assert centre_offset(analysis.boxes[0], analysis.width, analysis.height) > 0.3
    assert pick_face(analysis, RULES) == (None, "multiple_faces")
