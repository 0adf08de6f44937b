"""In-process HNSW index (hnswlib). Rebuilt from the store at start; the store stays the source of truth."""

from __future__ import annotations

import threading
from typing import Any

import hnswlib
import numpy as np

from facegate.config import HNSWIndexSettings, Metric
from facegate.index.base import Hit, Vectors


class HNSWIndex:
    def __init__(self, settings: HNSWIndexSettings, *, dim: int, metric: Metric) -> None:
        self._settings = settings
        self._dim = dim
        self._metric = metric
        self._index: Any = None
        self._person_of: dict[int, str] = {}
        self._max_id: int | None = None
        # hnswlib allows concurrent queries but not a resize during them; one lock keeps it simple.
        self._lock = threading.Lock()

    def open(self) -> None:
        index = hnswlib.Index(space="cosine" if self._metric == "cosine" else "l2", dim=self._dim)
        index.init_index(
            max_elements=self._settings.initial_capacity,
            ef_construction=self._settings.ef_construction,
            M=self._settings.m,
        )
        index.set_ef(self._settings.ef_search)
        with self._lock:
            self._index = index
            self._person_of = {}
            self._max_id = None

    def add(self, face_ids: list[int], person_ids: list[str], vectors: Vectors) -> None:
        if not face_ids:
            return
        data = np.asarray(vectors, dtype=np.float32).reshape(len(face_ids), self._dim)
        with self._lock:
            needed = self._index.get_current_count() + len(face_ids)
            capacity = self._index.get_max_elements()
            if needed > capacity:
                self._index.resize_index(max(needed, capacity * 2))
            self._index.add_items(data, np.asarray(face_ids, dtype=np.int64))
            self._person_of.update(zip(face_ids, person_ids, strict=True))
            self._max_id = max(face_ids) if self._max_id is None else max(self._max_id, *face_ids)

    def remove(self, face_ids: list[int]) -> None:
        with self._lock:
            for face_id in face_ids:
                if self._person_of.pop(face_id, None) is not None:
                    self._index.mark_deleted(face_id)
                    if face_id == self._max_id:
                        self._max_id = None

    def search(self, vector: Vectors, k: int) -> list[Hit]:
        with self._lock:
            live = len(self._person_of)
            if live == 0 or k <= 0:
                return []
            k = min(k, live)
            self._index.set_ef(max(self._settings.ef_search, k))
            labels, dists = self._index.knn_query(np.asarray(vector, dtype=np.float32).reshape(1, -1), k=k)
            pairs = [(int(label), self._person_of.get(int(label))) for label in labels[0]]
        hits = []
        for (label, person_id), dist in zip(pairs, dists[0], strict=True):
            if person_id is None:
                continue
            # hnswlib's "l2" space returns squared distances.
            value = float(dist) if self._metric == "cosine" else float(np.sqrt(max(float(dist), 0.0)))
            hits.append(Hit(label, person_id, value))
        return hits

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._person_of)

    def max_id(self) -> int | None:
        with self._lock:
            if self._max_id is None and self._person_of:
                self._max_id = max(self._person_of)  # recomputed only after the highest id was removed
            return self._max_id

    def __len__(self) -> int:
        return len(self._person_of)

    def ready(self) -> bool:
        return self._index is not None
