"""Grouping unknown faces into suggested people: a density rule with a cannot-link constraint (pure: no store).

A face is *core* when at least `min_faces` faces (itself included) lie within `distance` of it. Core faces within
`distance` of each other belong together (DBSCAN, as Immich groups faces); a face that is not core joins the group
of its nearest core neighbour (a border face); the others are noise and wait for more faces. Faces of one request
(one photo, one video track) are never put in one group: two faces in one photo are two people. Links are made
closest pair first and refused when they would put two faces of one request together.

`assign` places new faces as they arrive. It never merges two existing groups (a group a user is looking at does
not turn into another under them); `regroup` recomputes everything, keeping group ids where groups overlap, and
runs periodically. Groups in `keep` (dismissed ones) keep their faces and absorb the faces that would join them,
so a dismissed stranger never comes back as a new suggestion.

Neighbours come from an in-process HNSW graph (hnswlib), so both steps scale to 100,000s of faces. A face's
neighbour list is cut at `neighbours`; where that cut may hide links (a stranger seen far more often than that),
`regroup` asks the graph for the nearest core face of another group (`_link_saturated`).
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import hnswlib
import numpy as np
import numpy.typing as npt

from facegate.config import Metric

Neighbours = list[tuple[int, float]]  # (position, distance), nearest first, the face itself included


@dataclass(frozen=True)
class GroupingParams:
    distance: float
    min_faces: int
    # Neighbours fetched per face: a face with more than this many within `distance` is core anyway, and links to
    # its nearest ones are enough to connect a group.
    neighbours: int = 24
    threads: int = 1


def new_group_id() -> str:
    return str(uuid.uuid4())


def _elsewhere(core: set[int], find: Callable[[int], int], own: int, j: int) -> bool:
    """j is a core face of a component other than `own`."""
    return j in core and find(j) != own


class FaceGrouper:
    """Unknown faces of one embedding space (match ids, request ids, vectors) and the group each is in."""

    def __init__(self, dim: int, metric: Metric, params: GroupingParams, *, capacity: int = 1024) -> None:
        if params.min_faces < 2 or params.neighbours < params.min_faces:
            raise ValueError("min_faces must be at least 2 and at most `neighbours`")
        self.params = params
        self._dim = dim
        self._metric = metric
        self._index = hnswlib.Index(space="cosine" if metric == "cosine" else "l2", dim=dim)
        self._index.init_index(max_elements=capacity, ef_construction=100, M=16)
        self._index.set_num_threads(params.threads)
        self._vectors = np.zeros((capacity, dim), dtype=np.float32)
        self._ids: list[int] = []  # position -> face (match) id
        self._requests: list[str] = []
        self._labels: list[str | None] = []
        self._core = np.zeros(capacity, dtype=np.int8)  # 1 core, 0 not, -1 not known (loaded or stale)
        self._alive = np.zeros(capacity, dtype=bool)
        self._position: dict[int, int] = {}
        self._group_requests: dict[str, Counter[str]] = {}
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._position

    # Faces in and out --------------------------------------------------------------------------------------------
    def add(
        self,
        ids: Sequence[int],
        requests: Sequence[str],
        vectors: npt.NDArray[np.float32],
        labels: Sequence[str | None] | None = None,
    ) -> None:
        """Add faces (not yet placed, or with the groups the store has for them). Ids already here are skipped."""
        fresh = [i for i, face_id in enumerate(ids) if face_id not in self._position]
        if not fresh:
            return
        start = len(self._ids)
        self._grow(start + len(fresh))
        vectors = np.asarray(vectors, dtype=np.float32)[fresh]
        positions = np.arange(start, start + len(fresh))
        self._vectors[positions] = vectors
        self._index.add_items(vectors, positions)
        self._alive[positions] = True
        self._core[positions] = -1
        for n, i in enumerate(fresh):
            self._position[ids[i]] = start + n
            self._ids.append(ids[i])
            self._requests.append(requests[i])
            self._labels.append(None)
            label = labels[i] if labels is not None else None
            if label is not None:
                self._set_label(start + n, label)
        self._live += len(fresh)

    def remove(self, ids: Collection[int]) -> None:
        """Faces gone from the unknowns (named, purged, deleted)."""
        for face_id in ids:
            position = self._position.pop(face_id, None)
            if position is None:
                continue
            self._set_label(position, None)
            self._index.mark_deleted(position)
            self._alive[position] = False
            self._live -= 1
        # Neighbour counts around the removed faces changed: core status is recomputed when next needed.
        self._core[self._core == 1] = -1

    def _grow(self, size: int) -> None:
        capacity = len(self._vectors)
        if size <= capacity:
            return
        new = max(size, 2 * capacity)
        self._index.resize_index(new)
        self._vectors = np.concatenate([self._vectors, np.zeros((new - capacity, self._dim), np.float32)])
        self._core = np.concatenate([self._core, np.zeros(new - capacity, np.int8)])
        self._alive = np.concatenate([self._alive, np.zeros(new - capacity, bool)])

    # Reading -----------------------------------------------------------------------------------------------------
    def label_of(self, face_id: int) -> str | None:
        position = self._position.get(face_id)
        return None if position is None else self._labels[position]

    def labels(self) -> dict[int, str]:
        """Face id -> group, for the faces in a group."""
        return {self._ids[p]: label for p, label in enumerate(self._labels) if label is not None and self._alive[p]}

    def relabel(self, changes: dict[int, str | None]) -> None:
        """Apply group changes made elsewhere (the store's view after another process wrote it)."""
        for face_id, label in changes.items():
            position = self._position.get(face_id)
            if position is not None:
                self._set_label(position, label)

    # Incremental -------------------------------------------------------------------------------------------------
    def assign(self, ids: Collection[int]) -> dict[int, str]:
        """Place these (already added) faces, and noise faces their arrival made core. Returns the faces that
        joined a group: face id -> group (existing or new)."""
        positions = sorted(self._position[i] for i in ids if i in self._position)
        if not positions:
            return {}
        near = self._neighbours(positions)
        # Noise faces near the new ones have more neighbours now: they may have become core.
        waiting = sorted({j for p in positions for j, _ in near[p] if self._labels[j] is None and j not in near})
        near.update(self._neighbours(waiting))
        for p, found in near.items():
            self._core[p] = len(found) >= self.params.min_faces
        changed: dict[int, str] = {}
        for p in positions + waiting:
            if self._labels[p] is None and self._core[p] == 1:
                self._place_core(p, near[p], changed)
        for p in positions:
            if self._labels[p] is None:
                for j, _ in near[p]:
                    label = self._labels[j]
                    if j != p and label is not None and self._is_core(j) and self._fits(label, p):
                        self._join(p, label, changed)
                        break
        return changed

    def _place_core(self, p: int, near: Neighbours, changed: dict[int, str]) -> None:
        target = next(
            (
                self._labels[j]
                for j, _ in near
                if j != p and self._labels[j] is not None and self._is_core(j) and self._fits(self._labels[j], p)
            ),
            None,
        )
        if target is None:
            members: list[int] = []
            seen: set[str] = set()
            for j, _ in near:
                if self._labels[j] is None and self._requests[j] not in seen:
                    members.append(j)
                    seen.add(self._requests[j])
            if len(members) < self.params.min_faces:
                return
            target = new_group_id()
            for j in members:
                self._join(j, target, changed)
            return
        self._join(p, target, changed)
        for j, _ in near:  # p's unplaced neighbours are border faces of its group
            if self._labels[j] is None and self._fits(target, j):
                self._join(j, target, changed)

    def _join(self, p: int, label: str, changed: dict[int, str]) -> None:
        self._set_label(p, label)
        changed[self._ids[p]] = label

    # Full regrouping ---------------------------------------------------------------------------------------------
    def regroup(self, keep: Collection[str] = ()) -> dict[int, str | None]:
        """Group every face anew. Faces of `keep` groups stay in them, and the new groups that touch one join it;
        other new groups take the id of the old group they share most faces with. Returns the faces whose group
        changed: face id -> group, or None for faces that are noise now."""
        keep = set(keep)
        positions = np.flatnonzero(self._alive[: len(self._ids)])
        near = self._neighbours(positions.tolist())
        core = {p for p, found in near.items() if len(found) >= self.params.min_faces}
        for p in near:
            self._core[p] = p in core
        parent = {p: p for p in positions.tolist()}
        requests: dict[int, set[str]] = {p: {self._requests[p]} for p in parent}

        def find(p: int) -> int:
            while parent[p] != p:
                parent[p] = parent[parent[p]]
                p = parent[p]
            return p

        def link(p: int, j: int) -> bool:
            a, b = find(p), find(j)
            if a == b:
                return False
            small, big = (a, b) if len(requests[a]) <= len(requests[b]) else (b, a)
            if not requests[small].isdisjoint(requests[big]):
                return False  # one photo's two faces would end up together
            parent[small] = big
            requests[big] |= requests.pop(small)
            return True

        edges = sorted((d, p, j) for p in core for j, d in near[p] if p < j and j in core)
        for _, p, j in edges:
            link(p, j)
        self._link_saturated(near, core, find, link)
        for p in sorted(set(parent) - core):  # border faces: with their nearest core neighbour's group
            for j, _ in near[p]:
                if j in core:
                    root = find(j)
                    if self._requests[p] not in requests[root]:
                        parent[p] = root
                        requests[root].add(self._requests[p])
                        break
        groups: dict[int, list[int]] = {}
        for p in parent:
            root = find(p)
            if root in core or root != p:
                groups.setdefault(root, []).append(p)
        return self._reconcile(list(groups.values()), positions.tolist(), keep)

    def _link_saturated(
        self,
        near: dict[int, Neighbours],
        core: set[int],
        find: Callable[[int], int],
        link: Callable[[int, int], bool],
    ) -> None:
        """A face with a full neighbour list (`neighbours` faces, all within `distance`) may have more core faces
        within `distance` than it was shown: a stranger seen far more often than `neighbours` times fills every
        list with their nearest look-alike photos, and the links between their sub-clusters are never seen (at
        100,000 synthetic faces the full regrouping made 6.4 groups per person). So one face of each component
        with a full list asks the graph for the nearest core face of another component, and the two join when
        it is within `distance` (a link the density rule makes anyway: no looser). Rounds repeat for the faces
        whose component grew, until none finds a partner."""
        k = min(self.params.neighbours, self._live)
        asking: dict[int, int] = {}
        for p in sorted(core):
            if len(near[p]) >= k:
                asking.setdefault(find(p), p)
        active = sorted(asking.values())
        while active:
            grown = []
            for p in active:
                nearest = self._nearest_where(p, functools.partial(_elsewhere, core, find, find(p)))
                if nearest is not None and nearest[1] <= self.params.distance and link(p, nearest[0]):
                    grown.append(p)
            active = grown

    def _nearest_where(self, p: int, accept: Callable[[int], bool]) -> tuple[int, float] | None:
        """The face nearest to p among those `accept` lets through (the graph search skips the others)."""
        try:
            found, distances = self._index.knn_query(self._vectors[p], k=1, num_threads=1, filter=accept)
        except RuntimeError:  # no face passes
            return None
        return int(found[0][0]), float(self._distances(distances)[0][0])

    def _reconcile(self, groups: list[list[int]], positions: list[int], keep: set[str]) -> dict[int, str | None]:
        target: list[str | None] = [None] * len(groups)
        overlaps: list[tuple[int, int, str]] = []
        for g, members in enumerate(groups):
            old: Counter[str] = Counter(label for p in members if (label := self._labels[p]) is not None)
            kept = [label for label in old if label in keep]
            if kept:
                target[g] = max(kept, key=lambda label: (old[label], label))
            elif len(members) >= self.params.min_faces:
                overlaps += [(count, g, label) for label, count in old.items()]
        used: set[str] = set()
        for _, g, old_label in sorted(overlaps, key=lambda o: (-o[0], o[1], o[2])):
            if target[g] is None and old_label not in used:
                target[g] = old_label
                used.add(old_label)
        wanted: dict[int, str | None] = dict.fromkeys(positions)
        for g, members in enumerate(groups):
            if target[g] is None and len(members) >= self.params.min_faces:
                target[g] = new_group_id()
            for p in members:
                wanted[p] = target[g]
        changed: dict[int, str | None] = {}
        for p, label in wanted.items():
            if self._labels[p] in keep or self._labels[p] == label:
                continue
            self._set_label(p, label)
            changed[self._ids[p]] = label
        return changed

    # Helpers -----------------------------------------------------------------------------------------------------
    def _fits(self, label: str | None, p: int) -> bool:
        """p may join `label`: no face of p's request is in it yet."""
        return label is not None and self._group_requests.get(label, Counter())[self._requests[p]] == 0

    def _set_label(self, p: int, label: str | None) -> None:
        old = self._labels[p]
        if old == label:
            return
        request = self._requests[p]
        if old is not None:
            counts = self._group_requests[old]
            counts[request] -= 1
            if counts[request] <= 0:
                del counts[request]
            if not counts:
                del self._group_requests[old]
        if label is not None:
            self._group_requests.setdefault(label, Counter())[request] += 1
        self._labels[p] = label

    def _is_core(self, p: int) -> bool:
        if self._core[p] == -1:
            self._core[p] = len(self._neighbours([p])[p]) >= self.params.min_faces
        return bool(self._core[p] == 1)

    def _neighbours(self, positions: Sequence[int]) -> dict[int, Neighbours]:
        """Faces within `distance` of each position (itself included), nearest first."""
        if not positions:
            return {}
        k = min(self.params.neighbours, self._live)
        queries = self._vectors[np.asarray(positions)]
        try:
            self._index.set_ef(max(64, 2 * k))
            found, distances = self._index.knn_query(queries, k=k, num_threads=self.params.threads)
        except RuntimeError:  # hnswlib found fewer than k (a graph mostly of deleted faces): scan exactly
            found, distances = self._exact(queries, k)
        distances = self._distances(distances)
        limit = self.params.distance
        result: dict[int, Neighbours] = {}
        for p, labels, dist in zip(positions, found, distances, strict=True):
            near = [(int(j), float(d)) for j, d in zip(labels, dist, strict=True) if d <= limit]
            if all(j != p for j, _ in near):  # the face itself, in case the approximate search missed it
                near.insert(0, (p, 0.0))
            result[p] = near
        return result

    def _distances(self, raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """hnswlib's l2 space answers squared distances; the metric is plain euclidean."""
        return np.sqrt(np.maximum(raw, 0.0)) if self._metric == "euclidean" else raw

    def _exact(self, queries: npt.NDArray[np.float32], k: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        live = np.flatnonzero(self._alive[: len(self._ids)])
        vectors = self._vectors[live].astype(np.float64)
        q = queries.astype(np.float64)
        if self._metric == "cosine":
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            d = 1.0 - q @ vectors.T
        else:  # squared, as hnswlib's l2 space answers
            d = (q * q).sum(1)[:, None] + (vectors * vectors).sum(1)[None, :] - 2.0 * q @ vectors.T
        order = np.argsort(d, axis=1)[:, :k]
        return live[order], np.take_along_axis(d, order, axis=1)
