"""index.hnsw: add, search, remove; removed faces are never returned; the index grows past its capacity."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import HNSWIndexSettings, Metric
from facegate.index.hnsw import HNSWIndex

DIM = 16


def _index(metric: Metric = "cosine", capacity: int = 16) -> HNSWIndex:
    index = HNSWIndex(HNSWIndexSettings(initial_capacity=capacity), dim=DIM, metric=metric)
    index.open()
    return index


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_not_ready_until_opened() -> None:
    index = HNSWIndex(HNSWIndexSettings(), dim=DIM, metric="cosine")
    assert not index.ready()
    index.open()
    assert index.ready()
    assert len(index) == 0
    assert index.search(_vectors(1)[0], 5) == []


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_search_returns_nearest_first_with_true_distances(metric: Metric) -> None:
    index = _index(metric)
    vectors = _vectors(10)
    index.add(list(range(100, 110)), [f"p{i}" for i in range(10)], vectors)
    query = vectors[3] + 0.01

    hits = index.search(query, 10)

    assert len(hits) == 10
    assert (hits[0].face_id, hits[0].person_id) == (103, "p3")
    distances = [h.distance for h in hits]
    assert distances == sorted(distances)
    for hit in hits:
        v = vectors[hit.face_id - 100]
        expected = _cosine(query, v) if metric == "cosine" else float(np.linalg.norm(query - v))
        assert hit.distance == pytest.approx(expected, abs=1e-4)  # euclidean is not squared


def test_removed_faces_are_never_returned() -> None:
    index = _index(capacity=64)
    vectors = _vectors(50)
    index.add(list(range(50)), ["a"] * 25 + ["b"] * 25, vectors)
    removed = list(range(0, 50, 2))

    index.remove(removed)

    assert len(index) == 25
    for i in range(50):
        hits = index.search(vectors[i], 50)
        assert not {h.face_id for h in hits} & set(removed)
        assert len(hits) == 25  # k larger than what is left: every live face, nothing else


def test_remove_everything_and_unknown_ids() -> None:
    index = _index()
    index.add([1, 2], ["a", "b"], _vectors(2))
    index.remove([1, 2, 3, 999])
    index.remove([1])
    assert len(index) == 0
    assert index.search(_vectors(1)[0], 3) == []


def test_grows_beyond_its_initial_capacity() -> None:
    index = _index(capacity=16)
    vectors = _vectors(100)
    for start in range(0, 100, 7):
        ids = list(range(start, min(start + 7, 100)))
        index.add(ids, [f"p{i}" for i in ids], vectors[ids])
    index.add(list(range(100, 140)), ["bulk"] * 40, _vectors(40, seed=1))  # one batch far over the capacity

    assert len(index) == 140
    for i in (0, 50, 99):
        assert index.search(vectors[i], 1)[0].face_id == i


def test_removed_slots_do_not_block_growth() -> None:
    index = _index(capacity=16)
    index.add(list(range(16)), ["a"] * 16, _vectors(16))
    index.remove(list(range(16)))
    index.add(list(range(16, 48)), ["b"] * 32, _vectors(32, seed=2))
    assert len(index) == 32
    assert {h.person_id for h in index.search(_vectors(1, seed=3)[0], 32)} == {"b"}


def test_search_for_fewer_than_one() -> None:
    index = _index()
    index.add([1], ["a"], _vectors(1))
    assert index.search(_vectors(1)[0], 0) == []


def test_open_again_starts_empty() -> None:
    index = _index()
    index.add([1, 2], ["a", "b"], _vectors(2))
    index.open()
    assert len(index) == 0
    assert index.search(_vectors(1)[0], 2) == []


def test_empty_add_is_a_no_op() -> None:
    index = _index()
    index.add([], [], np.zeros((0, DIM), dtype=np.float32))
    assert len(index) == 0


def test_ids_lists_live_faces_only() -> None:
    index = HNSWIndex(HNSWIndexSettings(initial_capacity=16), dim=4, metric="cosine")
    index.open()
    index.add([1, 2, 3], ["a", "a", "b"], np.eye(4, dtype=np.float32)[:3])
    index.remove([2])
    assert index.ids() == {1, 3}


def test_max_id_follows_adds_and_removes() -> None:
    index = HNSWIndex(HNSWIndexSettings(initial_capacity=16), dim=4, metric="cosine")
    index.open()
    assert index.max_id() is None
    index.add([3, 7], ["a", "b"], np.eye(4, dtype=np.float32)[:2])
    assert index.max_id() == 7
    index.remove([7])
    assert index.max_id() == 3
    index.remove([3])
    assert index.max_id() is None
