"""index.hnsw: add, search, remove; removed faces are never returned; deletes do not break searches.

The reference for every search is a brute-force numpy scan over the faces that should be live.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from facegate.config import HNSWIndexSettings, Metric
from facegate.index.hnsw import HNSWIndex

DIM = 16


def _index(metric: Metric = "cosine", capacity: int = 16, max_deleted_ratio: float = 1.0) -> HNSWIndex:
    settings = HNSWIndexSettings(initial_capacity=capacity, max_deleted_ratio=max_deleted_ratio)
    index = HNSWIndex(settings, dim=DIM, metric=metric)
    index.open()
    return index


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _distances(query: np.ndarray, matrix: np.ndarray, metric: Metric) -> np.ndarray:
    if metric == "cosine":
        unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.asarray(1.0 - unit @ (query / np.linalg.norm(query)))
    return np.asarray(np.linalg.norm(matrix - query, axis=1))


def _reference(live: dict[int, np.ndarray], query: np.ndarray, k: int, metric: Metric = "cosine") -> list[int]:
    ids = np.array(list(live))
    order = np.argsort(_distances(query, np.stack([live[i] for i in ids]), metric))
    return [int(i) for i in ids[order[:k]]]


def test_not_ready_until_opened() -> None:
    index = HNSWIndex(HNSWIndexSettings(), dim=DIM, metric="cosine")
    assert index.stateful
    assert not index.ready()
    index.open()
    assert index.ready()
    assert len(index) == 0
    assert index.deleted_count == 0
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


def test_replayed_add_is_a_no_op() -> None:
    index = _index()
    vectors = _vectors(3)
    index.add([1, 2], ["a", "b"], vectors[:2])

    index.add([2, 3, 3], ["x", "c", "y"], np.stack([vectors[0], vectors[2], vectors[0]]))  # 2 present, 3 twice

    assert len(index) == 3
    assert index.deleted_count == 0
    hits = index.search(vectors[1], 3)
    assert sorted((h.face_id, h.person_id) for h in hits) == [(1, "a"), (2, "b"), (3, "c")]
    assert hits[0].face_id == 2 and hits[0].distance == pytest.approx(0.0, abs=1e-5)  # kept its first vector


def test_removed_face_added_again_is_one_entry() -> None:
    index = _index(max_deleted_ratio=100.0)  # no compaction: the id still owns its deleted slot
    vectors = _vectors(30)
    index.add(list(range(30)), ["a"] * 30, vectors)
    index.remove([5, 6])
    index.add([5], ["a"], vectors[5:6])
    index.add([100, 101], ["b", "b"], _vectors(2, seed=1))  # reuses the slot 6 left behind

    assert len(index) == 31
    assert index.deleted_count == 0
    ids = [h.face_id for h in index.search(vectors[5], 31)]
    assert sorted(ids) == sorted(({*range(30)} - {6}) | {100, 101})
    assert ids[0] == 5
    index.remove([5, 100])  # both known to the graph under one label each
    assert len(index) == 29
    assert {5, 100}.isdisjoint(h.face_id for h in index.search(vectors[5], 40))


def test_close_releases_the_graph() -> None:
    index = _index()
    index.add([1, 2], ["a", "b"], _vectors(2))
    index.close()
    index.close()
    assert not index.ready()
    assert len(index) == 0
    assert index.search(_vectors(1)[0], 2) == []
    index.remove([1])
    with pytest.raises(RuntimeError):
        index.add([3], ["c"], _vectors(1))
    index.open()
    index.add([3], ["c"], _vectors(1))
    assert [h.face_id for h in index.search(_vectors(1)[0], 2)] == [3]


@pytest.mark.parametrize("seed", [10, 40])  # graphs on which hnswlib alone failed every one of these searches
def test_search_after_everything_was_deleted(seed: int) -> None:
    """The production failure: identify raised "Cannot return the results in a contiguous 2D array"."""
    index = _index(capacity=1024)
    index.add(list(range(500)), ["gone"] * 500, _vectors(500, seed=seed))
    index.remove(list(range(500)))
    vectors = _vectors(20, seed=seed + 1)
    index.add(list(range(1000, 1020)), [f"p{i}" for i in range(1000, 1020)], vectors)
    live = dict(zip(range(1000, 1020), vectors, strict=True))

    for query in _vectors(400, seed=3):
        hits = index.search(query, 24)
        assert [h.face_id for h in hits] == _reference(live, query, 24)
        for hit in hits:
            assert hit.person_id == f"p{hit.face_id}"
            assert hit.distance == pytest.approx(_cosine(query, live[hit.face_id]), abs=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
# With compaction, and with only slot reuse. HNSW is approximate and hnswlib builds its graph on several threads, so
# one run differs from the next: over 200 runs of this test per case (seeds 0-199, about 195 searches each) compaction
# missed the true nearest face 0 times; slot reuse alone, where hnswlib's replace_deleted can leave a reused slot
# poorly linked, missed it in 2 (cosine) and 8 (euclidean) runs, once per run, worst recall@1 0.989. One fixed seed
# asserting 1.0 there failed a CI run. So: every hit live and the counts exact, always; recall@1 over the run at least
# 0.995 with compaction (one miss) and 0.97 with slot reuse only.
@pytest.mark.parametrize(("max_deleted_ratio", "min_recall"), [(1.0, 0.995), (1e9, 0.97)])
def test_delete_add_cycles_match_brute_force(metric: Metric, max_deleted_ratio: float, min_recall: float) -> None:
    rng = np.random.default_rng(7)
    index = _index(metric, capacity=16, max_deleted_ratio=max_deleted_ratio)
    live: dict[int, np.ndarray] = {}
    removed: dict[int, np.ndarray] = {}
    next_id = 0
    searches = found = 0
    for _ in range(40):
        batch = int(rng.integers(1, 40))
        vectors = rng.normal(size=(batch, DIM)).astype(np.float32)
        ids = list(range(next_id, next_id + batch))
        next_id += batch
        # Now and then a removed face comes back (a person re-enrolled from a replayed log).
        back = [int(i) for i in rng.permutation(list(removed))[:2]] if removed else []
        index.add(ids + back, [f"p{i}" for i in ids + back], np.concatenate([vectors, *([removed[i]] for i in back)]))
        live.update(zip(ids, vectors, strict=True))
        live.update((i, removed.pop(i)) for i in back)

        drop = [int(i) for i in rng.choice(list(live), size=int(rng.integers(0, len(live) + 1)), replace=False)]
        index.remove(drop)
        removed.update((i, live.pop(i)) for i in drop)

        assert len(index) == len(live)
        for query in rng.normal(size=(5, DIM)).astype(np.float32):
            hits = index.search(query, 10)
            if not live:
                assert hits == []
                continue
            assert {h.face_id for h in hits} <= set(live)
            assert len(hits) == min(10, len(live))
            searches += 1
            found += hits[0].face_id == _reference(live, query, 1, metric)[0]
    assert searches > 100
    assert found / searches >= min_recall


def test_compaction_drops_deleted_entries() -> None:
    index = _index(capacity=64)
    vectors = _vectors(200)
    index.add(list(range(200)), ["a"] * 200, vectors)

    index.remove(list(range(90)))  # 90 deleted, 110 live: below the ratio, slots kept for reuse
    assert index.deleted_count == 90
    index.remove(list(range(90, 150)))  # 150 deleted > 1.0 x 50 live: rebuilt from the live entries

    assert index.deleted_count == 0
    assert len(index) == 50
    live = dict(zip(range(150, 200), vectors[150:], strict=True))
    for query in vectors[::7]:
        assert [h.face_id for h in index.search(query, 5)] == _reference(live, query, 5)
    index.add([500], ["b"], vectors[:1])
    assert index.search(vectors[0], 1)[0].face_id == 500


def test_a_few_deletes_are_not_worth_a_rebuild() -> None:
    index = _index()
    index.add(list(range(10)), ["a"] * 10, _vectors(10))
    index.remove(list(range(9)))
    assert index.deleted_count == 9
    assert [h.face_id for h in index.search(_vectors(1)[0], 3)] == [9]


def test_changes_made_while_compacting_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    index = _index(capacity=64)
    vectors = _vectors(300)
    index.add(list(range(100)), ["a"] * 100, vectors[:100])
    live = dict(zip(range(100), vectors[:100], strict=True))

    def meanwhile() -> None:
        # Runs in another thread while the new graph is built: it must not wait for the rebuild.
        index.remove([80, 81])  # copied, then removed
        index.remove([82])
        index.add([82], ["a"], vectors[82:83])  # copied, removed and added again
        index.add(list(range(200, 210)), ["b"] * 10, vectors[200:210])  # new
        index.add([210], ["b"], vectors[210:211])
        index.remove([210])  # new and gone again
        assert {h.face_id for h in index.search(vectors[205], 3)} >= {205}  # the old graph still serves

    build = index._new_graph

    def build_with_traffic(capacity: int) -> Any:
        graph = build(capacity)
        worker = threading.Thread(target=meanwhile)
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "add/remove blocked by the rebuild"
        return graph

    monkeypatch.setattr(index, "_new_graph", build_with_traffic)
    index.remove(list(range(70)))  # 70 deleted > 30 live: compaction, with traffic in the middle
    monkeypatch.undo()

    for i in [*range(70), 80, 81]:
        live.pop(i)
    live.update(zip(range(200, 210), vectors[200:210], strict=True))
    assert len(index) == len(live) == 38
    assert index.deleted_count == 2  # 80 and 81, marked in the new graph
    for query in [*vectors[60:100], *vectors[200:211]]:
        hits = index.search(query, 40)
        assert [h.face_id for h in hits] == _reference(live, query, 40)


def test_removes_made_while_compacting_can_call_for_another(monkeypatch: pytest.MonkeyPatch) -> None:
    index = _index(capacity=64)
    vectors = _vectors(100)
    index.add(list(range(100)), ["a"] * 100, vectors)
    build = index._new_graph
    calls = []

    def build_with_removes(capacity: int) -> Any:
        calls.append(capacity)
        if len(calls) == 1:
            worker = threading.Thread(target=index.remove, args=(list(range(70, 95)),))
            worker.start()
            worker.join(timeout=5)
        return build(capacity)

    monkeypatch.setattr(index, "_new_graph", build_with_removes)
    index.remove(list(range(70)))  # copies 30; 25 of them go meanwhile, so the copy is mostly deleted again

    assert len(calls) == 2
    assert index.deleted_count == 0
    live = dict(zip(range(95, 100), vectors[95:], strict=True))
    assert [h.face_id for h in index.search(vectors[0], 10)] == _reference(live, vectors[0], 10)


class _ShortGraph:
    """An hnswlib graph whose searches come up short, as when live entries are cut off behind deleted ones."""

    def __init__(self, graph: Any, failures: int) -> None:
        self._graph = graph
        self.failures = failures
        self.efs: list[int] = []

    def knn_query(self, data: Any, k: int) -> Any:
        self.efs.append(int(self._graph.ef))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Cannot return the results in a contiguous 2D array. Probably ef or M is too small")
        return self._graph.knn_query(data, k=k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)


@pytest.mark.parametrize("failures", [1, 100])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_search_retries_then_scans_when_hnswlib_finds_too_few(failures: int, metric: Metric) -> None:
    index = _index(metric, capacity=2048, max_deleted_ratio=1e9)
    vectors = _vectors(1000)
    index.add(list(range(1000)), ["a"] * 1000, vectors)
    index.remove(list(range(0, 1000, 2)))
    live = dict(zip(range(1, 1000, 2), vectors[1::2], strict=True))
    short = _ShortGraph(index._index, failures)
    index._index = short
    query = vectors[1] + 0.01

    hits = index.search(query, 5)

    assert [h.face_id for h in hits] == _reference(live, query, 5, metric)
    for hit in hits:
        assert hit.distance == pytest.approx(float(_distances(query, live[hit.face_id][None, :], metric)[0]), abs=1e-4)
    ef = index._settings.ef_search
    if failures == 1:
        assert short.efs == [ef, ef * 4]  # one retry with a larger ef
    else:
        assert short.efs == [ef, ef * 4, 1000]  # up to every entry, then the exact scan
    assert short._graph.ef == ef  # the configured ef is back for the next search


def test_searches_while_faces_come_and_go() -> None:
    index = _index(capacity=16)
    vectors = _vectors(1200)
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                for hit in index.search(vectors[int(np.random.default_rng().integers(1200))], 8):
                    assert hit.face_id < 1200
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    searchers = [threading.Thread(target=search) for _ in range(4)]
    for thread in searchers:
        thread.start()
    try:
        for start in range(0, 1200, 100):
            ids = list(range(start, start + 100))
            index.add(ids, ["a"] * 100, vectors[ids])
            index.remove(list(range(max(0, start - 150), start + 60)))  # most go again: compactions
    finally:
        stop.set()
        for thread in searchers:
            thread.join()

    assert errors == []
    live = dict(zip(range(1160, 1200), vectors[1160:], strict=True))
    assert len(index) == 40
    for query in vectors[1150:]:
        assert [h.face_id for h in index.search(query, 10)] == _reference(live, query, 10)


def test_snapshot_round_trip_keeps_sparse_ids_and_people(tmp_path: Any) -> None:
    index = _index()
    vectors = _vectors(6)
    ids = [3, 70, 71, 5000, 9, 12]
    people = ["p-a", "p-b", "p-a", "p-c", "p-b", "p-a"]
    index.add(ids, people, vectors)
    index.remove([71])
    index.save(tmp_path / "snap")
    restored = HNSWIndex(HNSWIndexSettings(initial_capacity=16), dim=DIM, metric="cosine")
    assert restored.load(tmp_path / "snap")
    assert len(restored) == 5
    for face_id, person, vector in zip(ids, people, vectors, strict=True):
        hits = restored.search(vector, 1)
        if face_id == 71:
            assert all(h.face_id != 71 for h in hits)
        else:
            assert (hits[0].face_id, hits[0].person_id) == (face_id, person)
    # A face added after the restore gets a person already known and one not.
    restored.add([5001, 5002], ["p-c", "p-d"], _vectors(2, seed=1))
    assert {h.person_id for h in restored.search(_vectors(2, seed=1)[1], 1)} == {"p-d"}


def test_an_inconsistent_snapshot_map_is_not_loaded(tmp_path: Any) -> None:
    index = _index()
    index.add([1, 2], ["p-a", "p-b"], _vectors(2))
    index.save(tmp_path / "snap")
    with (tmp_path / "snap.map.npz").open("wb") as fh:  # face 2 points at a person that is not there
        np.savez(fh, labels=np.array([1, 2]), people=np.array(["p-a"]), index_of=np.array([0, 5], dtype=np.int32))
    assert not HNSWIndex(HNSWIndexSettings(), dim=DIM, metric="cosine").load(tmp_path / "snap")
