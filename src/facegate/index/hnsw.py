"""In-process HNSW index (hnswlib). Loaded from the store at start; the store stays the source of truth.

hnswlib only marks removed entries deleted: they stay in the graph and searches walk through them. Once most of
the graph is deleted, live entries can become unreachable and `knn_query` raises "Cannot return the results in a
contiguous 2D array" because it found fewer than k. Three things keep that from reaching a caller:

- new faces reuse deleted slots (`replace_deleted`), so add/remove churn does not grow the graph;
- when deleted entries outnumber live ones `max_deleted_ratio` times, the graph is rebuilt from its live entries
  (compaction). The rebuild runs outside the lock, so searches, adds and removes carry on against the old graph;
  whatever changed meanwhile is applied to the new graph before it is swapped in;
- a search asks for no more than the live entries, retries with a larger ef when hnswlib still comes up short,
  and as a last resort scans the live vectors exactly.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt

from facegate.config import HNSWIndexSettings, Metric
from facegate.index.base import Hit, Vectors

log = logging.getLogger(__name__)

# Text of the RuntimeError hnswlib raises when a search found fewer than k entries.
_TOO_FEW_FOUND = "contiguous 2D array"
# Below this many deleted entries a rebuild is not worth it: replaced slots and the search fallbacks cope.
_MIN_DELETED_TO_COMPACT = 16
Labels = npt.NDArray[np.int64]


@dataclass
class _Compaction:
    """A rebuild in progress: the live labels and vectors it copied, and the ids added or removed since."""

    labels: Labels  # sorted
    vectors: Vectors
    touched: set[int] = field(default_factory=set)


class _PersonMap:
    """Face id -> person id. A dict would cost ~100 bytes per face (an int key, a pointer, the hash table): at
    1M faces the largest part of the index beside the graph. Here a face costs 4 bytes (the person's number in a
    flat array indexed by face id, -1 when absent; face ids are the store's dense autoincrement ids) and each
    person's id string is kept once."""

    def __init__(self) -> None:
        self._number = np.full(0, -1, dtype=np.int32)
        self._people: list[str] = []
        self._numbers: dict[str, int] = {}
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __contains__(self, face_id: int) -> bool:
        return 0 <= face_id < len(self._number) and bool(self._number[face_id] >= 0)

    def get(self, face_id: int) -> str | None:
        if not 0 <= face_id < len(self._number):
            return None
        number = int(self._number[face_id])
        return self._people[number] if number >= 0 else None

    def set(self, face_id: int, person_id: str) -> None:
        if face_id < 0:
            raise ValueError(f"face ids are not negative: {face_id}")
        if face_id >= len(self._number):
            grown = np.full(max(face_id + 1, 2 * len(self._number), 1024), -1, dtype=np.int32)
            grown[: len(self._number)] = self._number
            self._number = grown
        number = self._numbers.get(person_id)
        if number is None:
            number = self._numbers[person_id] = len(self._people)
            self._people.append(person_id)
        if self._number[face_id] < 0:
            self._live += 1
        self._number[face_id] = number

    def pop(self, face_id: int) -> bool:
        """Forget a face; False if it was not here."""
        if face_id not in self:
            return False
        self._number[face_id] = -1
        self._live -= 1
        return True

    def labels(self) -> Labels:
        """The face ids present, ascending."""
        return np.flatnonzero(self._number >= 0).astype(np.int64)

    def arrays(self) -> tuple[Labels, npt.NDArray[np.str_], npt.NDArray[np.int32]]:
        """(face ids, the people they belong to, each face's index into those people): the snapshot format."""
        labels = self.labels()
        used, index_of = np.unique(self._number[labels], return_inverse=True)
        people = np.asarray([self._people[n] for n in used], dtype="U64")
        return labels, people, index_of.astype(np.int32)

    @classmethod
    def from_arrays(cls, labels: Labels, people: npt.NDArray[np.str_], index_of: npt.NDArray[np.int32]) -> _PersonMap:
        mapping = cls()
        consistent = len(labels) == len(index_of) and (
            not len(labels)
            or (
                labels.min() >= 0
                and len(np.unique(labels)) == len(labels)
                and 0 <= index_of.min() <= index_of.max() < len(people)
            )
        )
        if not consistent:
            raise ValueError("the face -> person map is inconsistent")
        mapping._people = [str(p) for p in people]
        mapping._numbers = {person: n for n, person in enumerate(mapping._people)}
        mapping._number = np.full(int(labels.max()) + 1 if len(labels) else 0, -1, dtype=np.int32)
        mapping._number[labels] = index_of
        mapping._live = len(labels)
        return mapping


class HNSWIndex:
    stateful = True

    def __init__(self, settings: HNSWIndexSettings, *, dim: int, metric: Metric) -> None:
        self._settings = settings
        self._dim = dim
        self._metric = metric
        self._index: Any = None
        self._person_of = _PersonMap()
        self._compaction: _Compaction | None = None
        # One lock around every use of the live graph: hnswlib's set_ef, resize and slot replacement are not safe
        # alongside queries, and a search costs well under a millisecond next to the embedding that precedes it.
        self._lock = threading.Lock()

    def open(self) -> None:
        index = self._new_graph(self._settings.initial_capacity)
        with self._lock:
            self._index = index
            self._person_of = _PersonMap()
            self._compaction = None

    def close(self) -> None:
        with self._lock:
            self._index = None
            self._person_of = _PersonMap()
            self._compaction = None

    def add(self, face_ids: list[int], person_ids: list[str], vectors: Vectors) -> None:
        if len(face_ids) != len(person_ids):
            raise ValueError("face_ids and person_ids differ in length")
        if not face_ids:
            return
        data = np.asarray(vectors, dtype=np.float32).reshape(len(face_ids), self._dim)
        with self._lock:
            if self._index is None:
                raise RuntimeError("The index is not open.")
            # A replayed change log may add a face again: keep the first copy of each id, skip ids present.
            rows: dict[int, int] = {}
            for row, face_id in enumerate(face_ids):
                if face_id not in self._person_of:
                    rows.setdefault(face_id, row)
            if not rows:
                return
            # Deleted slots are reused before new ones are taken.
            self._grow_for(self._index, max(int(self._index.get_current_count()), len(self._person_of) + len(rows)))
            # A removed face added again may still own its deleted slot: it is unmarked and updated in place, never
            # added through replace_deleted, which would leave a second slot under the same label.
            revived, fresh = self._split_revived(list(rows))
            if revived:
                self._index.add_items(data[[rows[i] for i in revived]], np.asarray(revived, dtype=np.int64))
            if fresh:
                self._index.add_items(
                    data[[rows[i] for i in fresh]], np.asarray(fresh, dtype=np.int64), replace_deleted=True
                )
            for face_id, row in rows.items():
                self._person_of.set(face_id, person_ids[row])
            if self._compaction is not None:
                self._compaction.touched.update(rows)

    def remove(self, face_ids: list[int]) -> None:
        with self._lock:
            for face_id in face_ids:
                if self._person_of.pop(face_id):
                    self._index.mark_deleted(face_id)
                    if self._compaction is not None:
                        self._compaction.touched.add(face_id)
            job = self._start_compaction()
        while job is not None:
            job = self._compact(job)

    def search(self, vector: Vectors, k: int) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32).reshape(1, self._dim)
        with self._lock:
            live = len(self._person_of)
            if live == 0 or k <= 0:
                return []
            labels, dists = self._query(query, min(k, live))
            pairs = [(int(label), self._person_of.get(int(label))) for label in labels]
        hits = []
        for (label, person_id), dist in zip(pairs, dists, strict=True):
            if person_id is None:  # hnswlib skips deleted entries; this guards the contract regardless
                continue
            # hnswlib's "l2" space returns squared distances.
            # Never negative (nor -0.0): float rounding of identical vectors can dip below zero.
            value = max(float(dist), 0.0) if self._metric == "cosine" else float(np.sqrt(max(float(dist), 0.0)))
            value = value + 0.0
            hits.append(Hit(label, person_id, value))
        return hits

    @property
    def deleted_count(self) -> int:
        """Entries marked deleted and still occupying the graph (slots to be reused or compacted away)."""
        with self._lock:
            return 0 if self._index is None else int(self._index.get_current_count()) - len(self._person_of)

    def __len__(self) -> int:
        return len(self._person_of)

    def ready(self) -> bool:
        return self._index is not None

    def save(self, path: Path) -> None:
        """Write the graph (hnswlib's own format) and the face -> person map beside it, as `path`.graph and
        `path`.map.npz. The caller records what the snapshot belongs to and where the change log stood."""
        with self._lock:
            if self._index is None:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._index.save_index(str(path.with_suffix(".graph")))
            labels, people, index_of = self._person_of.arrays()
            with path.with_suffix(".map.npz").open("wb") as fh:
                np.savez(fh, labels=labels, people=people, index_of=index_of)

    def load(self, path: Path) -> bool:
        """Replace the index with a snapshot written by `save`; False (index unchanged) if it cannot be read."""
        graph, mapping = path.with_suffix(".graph"), path.with_suffix(".map.npz")
        if not graph.is_file() or not mapping.is_file():
            return False
        try:
            index = hnswlib.Index(space="cosine" if self._metric == "cosine" else "l2", dim=self._dim)
            index.load_index(str(graph), allow_replace_deleted=True)
            index.set_ef(self._settings.ef_search)
            with np.load(mapping) as data:
                labels, people, index_of = data["labels"], data["people"], data["index_of"]
            person_of = _PersonMap.from_arrays(labels, people, index_of)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            log.warning("index snapshot %s unreadable (%s); rebuilding from the store", path, exc)
            return False
        with self._lock:
            self._index = index
            self._person_of = person_of
            self._compaction = None
        return True

    # -- internals; callers hold the lock unless noted --------------------------------------------------------

    def _new_graph(self, capacity: int) -> Any:
        index = hnswlib.Index(space="cosine" if self._metric == "cosine" else "l2", dim=self._dim)
        index.init_index(
            max_elements=capacity,
            ef_construction=self._settings.ef_construction,
            M=self._settings.m,
            allow_replace_deleted=True,
        )
        index.set_ef(self._settings.ef_search)
        return index

    @staticmethod
    def _grow_for(index: Any, entries: int) -> None:
        """Make room for `entries` slots (deleted slots are reused before new ones are taken)."""
        capacity = int(index.get_max_elements())
        if entries > capacity:
            index.resize_index(max(entries, capacity * 2))

    def _split_revived(self, new_ids: list[int]) -> tuple[list[int], list[int]]:
        """Ids the graph still holds as deleted (unmarked here, to be updated in place) and ids it does not know."""
        revived, fresh = [], []
        for face_id in new_ids:
            try:
                self._index.unmark_deleted(face_id)
            except RuntimeError:  # "Label not found": never added, or its slot was since reused or compacted
                fresh.append(face_id)
            else:
                revived.append(face_id)
        return revived, fresh

    def _query(self, query: Vectors, k: int) -> tuple[Labels, npt.NDArray[np.float32]]:
        try:
            labels, dists = self._index.knn_query(query, k=k)
            return labels[0].astype(np.int64), dists[0]
        except RuntimeError as exc:
            if _TOO_FEW_FOUND not in str(exc):
                raise
        # Too few found. A larger ef keeps a search going through deleted entries for longer. (hnswlib 0.8 already
        # goes on until it holds ef live ones, so there the shortfall means live entries it cannot reach at all:
        # the exact scan below answers, and compaction repairs the graph.)
        ef = max(self._settings.ef_search, k)
        total = int(self._index.get_current_count())
        try:
            while ef < total:
                ef = min(ef * 4, total)
                self._index.set_ef(ef)
                try:
                    labels, dists = self._index.knn_query(query, k=k)
                    return labels[0].astype(np.int64), dists[0]
                except RuntimeError as exc:
                    if _TOO_FEW_FOUND not in str(exc):
                        raise
        finally:
            self._index.set_ef(self._settings.ef_search)
        # Even a search through every entry came up short: some live entries are cut off behind deleted ones.
        log.warning("HNSW search found fewer than %d of %d live faces; answering by exact scan", k, len(self))
        return self._exact(query, k)

    def _exact(self, query: Vectors, k: int) -> tuple[Labels, npt.NDArray[np.float32]]:
        labels = self._person_of.labels()
        stored = np.asarray(self._index.get_items(labels), dtype=np.float32).reshape(len(labels), self._dim)
        if self._metric == "cosine":
            unit = stored / np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-30)
            q = query[0] / max(float(np.linalg.norm(query[0])), 1e-30)
            dists = 1.0 - unit @ q
        else:
            dists = ((stored - query[0]) ** 2).sum(axis=1)  # squared, as hnswlib returns them
        order = np.argsort(dists, kind="stable")[:k]
        return labels[order], dists[order].astype(np.float32)

    def _start_compaction(self) -> _Compaction | None:
        if self._index is None or self._compaction is not None:
            return None
        live = len(self._person_of)
        deleted = int(self._index.get_current_count()) - live
        if deleted == 0 or deleted <= self._settings.max_deleted_ratio * live:
            return None
        if live == 0:  # nothing to copy: start over now
            self._index = self._new_graph(self._settings.initial_capacity)
            return None
        if deleted < _MIN_DELETED_TO_COMPACT:
            return None
        labels = self._person_of.labels()
        vectors = np.asarray(self._index.get_items(labels), dtype=np.float32).reshape(live, self._dim)
        self._compaction = _Compaction(labels=labels, vectors=vectors)
        return self._compaction

    def _compact(self, job: _Compaction) -> _Compaction | None:
        """Rebuild from the live entries; called without the lock so the old graph keeps serving meanwhile.

        Returns the next rebuild when removes made while this one ran call for another.
        """
        try:
            fresh = self._new_graph(max(self._settings.initial_capacity, 2 * len(job.labels)))
            fresh.add_items(job.vectors, job.labels)
        except BaseException:
            with self._lock:
                if self._compaction is job:
                    self._compaction = None
            raise
        with self._lock:
            if self._compaction is not job:  # opened again, closed, or emptied meanwhile: this copy is stale
                return None
            self._compaction = None
            # Apply what changed while the copy was built: marks for copied faces since removed, and the faces
            # added since (a copied face removed and added again is updated in place).
            changed = sorted(job.touched)
            position = np.searchsorted(job.labels, changed)
            copied = {
                face_id
                for face_id, pos in zip(changed, position, strict=True)
                if pos < len(job.labels) and job.labels[pos] == face_id
            }
            for face_id in changed:
                if face_id not in self._person_of and face_id in copied:
                    fresh.mark_deleted(face_id)
            added = [face_id for face_id in changed if face_id in self._person_of]
            if added:
                appended = sum(face_id not in copied for face_id in added)
                self._grow_for(fresh, int(fresh.get_current_count()) + appended)
                fresh.add_items(
                    np.asarray(self._index.get_items(added), dtype=np.float32), np.asarray(added, dtype=np.int64)
                )
            dropped = int(self._index.get_current_count()) - len(self._person_of)
            self._index = fresh
            log.info("HNSW index compacted: %d live faces kept, %d deleted entries dropped", len(self), dropped)
            return self._start_compaction()
