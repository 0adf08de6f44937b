"""index.base: one candidate per person, nearest first."""

from __future__ import annotations

from facegate.index.base import Hit, best_per_person


def test_keeps_each_persons_nearest_face_nearest_people_first() -> None:
    hits = [
        Hit(1, "ann", 0.40),
        Hit(2, "bob", 0.10),
        Hit(3, "ann", 0.20),
        Hit(4, "cid", 0.30),
        Hit(5, "bob", 0.05),
    ]
    assert best_per_person(hits, 10) == [Hit(5, "bob", 0.05), Hit(3, "ann", 0.20), Hit(4, "cid", 0.30)]


def test_caps_at_k_people() -> None:
    hits = [Hit(i, f"p{i % 4}", i / 10) for i in range(12)]
    assert [h.person_id for h in best_per_person(hits, 2)] == ["p0", "p1"]


def test_nothing_in_nothing_out() -> None:
    assert best_per_person([], 3) == []
