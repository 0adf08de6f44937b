"""index.base: one candidate per person, nearest first, scored by the person template rule."""

from __future__ import annotations

import pytest

from facegate.index.base import Hit, per_person


def test_keeps_each_persons_nearest_face_nearest_people_first() -> None:
    hits = [
        Hit(1, "ann", 0.40),
        Hit(2, "bob", 0.10),
        Hit(3, "ann", 0.20),
        Hit(4, "cid", 0.30),
        Hit(5, "bob", 0.05),
    ]
    assert per_person(hits, 10, "best") == [Hit(5, "bob", 0.05), Hit(3, "ann", 0.20), Hit(4, "cid", 0.30)]


def test_caps_at_k_people() -> None:
    hits = [Hit(i, f"p{i % 4}", i / 10) for i in range(12)]
    assert [h.person_id for h in per_person(hits, 2, "best")] == ["p0", "p1"]


def test_nothing_in_nothing_out() -> None:
    assert per_person([], 3) == []


def test_two_nearest_scores_a_person_by_the_mean_of_their_two_nearest_faces() -> None:
    hits = [
        Hit(1, "ann", 0.40),
        Hit(2, "bob", 0.30),
        Hit(3, "ann", 0.20),
        Hit(6, "ann", 0.90),
        Hit(5, "bob", 0.25),
        Hit(4, "cid", 0.28),
    ]
    # ann (0.20 + 0.40) / 2 = 0.30, bob (0.25 + 0.30) / 2 = 0.275, cid has one face: 0.28
    assert per_person(hits, 10) == [Hit(5, "bob", 0.275), Hit(4, "cid", 0.28), Hit(3, "ann", pytest.approx(0.30))]


def test_a_lone_close_face_of_a_many_photo_person_is_not_enough() -> None:
    # One photo that happens to look like the probe, the person's other photos far: a stranger's lookalike
    # is held back, where "best" would take the single close face.
    hits = [Hit(1, "ann", 0.50), Hit(2, "ann", 0.80), Hit(3, "bob", 0.60)]
    assert per_person(hits, 1, "best")[0].person_id == "ann"
    assert per_person(hits, 1)[0].person_id == "bob"
