"""Faces in match history near probe faces: retro-search (a person's past sightings) and search with a photo.

Through the store's vector index where it has one (PostgreSQL: pgvector HNSW on matches.embedding), else by
comparing pages of stored embeddings with the probes in numpy (SQLite), so memory stays bounded however long the
history is. Either way the distances are measured here, in numpy, from the stored embeddings: the two paths give
the same distances, and the index only decides which rows are looked at (bench/search_history.py has the times).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from facegate.config import Metric
from facegate.services.accuracy import distance_matrix
from facegate.services.runtime import Runtime
from facegate.store.base import Sighting

PAGE = 10_000
Near = list[tuple[float, Sighting]]  # (distance, history face), nearest first


def near_history(
    rt: Runtime,
    probes: Sequence[npt.NDArray[np.float32]],
    *,
    within: float,
    unknown_only: bool,
    limit: int | None,
) -> tuple[list[Near], int]:
    """Per probe, the history faces of the engine's space within `within` (all of them, or only those that came
    back unknown), nearest first, at most `limit` (all when None); and how many history faces were searched."""
    if not probes:
        return [], 0
    info = rt.engine.info
    queries = np.stack(probes).astype("<f4")
    found: list[list[Sighting]] = []
    for query in queries:
        candidates = rt.store.history.nearest(
            info.name,
            info.model_version,
            info.metric,
            query.tobytes(),
            within=within,
            unknown_only=unknown_only,
            limit=limit,
        )
        if candidates is None:  # no vector index in this store
            return _scan(rt, queries, within=within, unknown_only=unknown_only, limit=limit)
        found.append(candidates)
    near = [_measure(info.metric, query, rows, within, limit) for query, rows in zip(queries, found, strict=True)]
    return near, rt.store.history.count(info.name, info.model_version, unknown_only=unknown_only)


def _measure(
    metric: Metric, query: npt.NDArray[np.float32], rows: list[Sighting], within: float, limit: int | None
) -> Near:
    if not rows:
        return []
    distances = distance_matrix(metric, query[None, :].astype(np.float64), _matrix(rows))[0]
    near = sorted(((float(d), row) for d, row in zip(distances, rows, strict=True) if d <= within), key=_order)
    return near[:limit]


def _scan(
    rt: Runtime, queries: npt.NDArray[np.float32], *, within: float, unknown_only: bool, limit: int | None
) -> tuple[list[Near], int]:
    info = rt.engine.info
    near: list[Near] = [[] for _ in queries]
    searched, after = 0, 0
    while page := rt.store.sightings(
        info.name, info.model_version, unknown_only=unknown_only, after_id=after, limit=PAGE
    ):
        after = page[-1].match_id
        searched += len(page)
        distances = distance_matrix(info.metric, queries.astype(np.float64), _matrix(page))
        for i, row in enumerate(distances):
            hits = np.flatnonzero(row <= within)
            if limit is not None and len(hits) > limit:
                hits = hits[np.argpartition(row[hits], limit - 1)[:limit]]
            near[i] = sorted(near[i] + [(float(row[j]), page[j]) for j in hits], key=_order)[:limit]
    return near, searched


def _order(item: tuple[float, Sighting]) -> tuple[float, int]:
    return item[0], item[1].match_id


def _matrix(rows: Sequence[Sighting]) -> npt.NDArray[np.float64]:
    return np.frombuffer(b"".join(r.embedding for r in rows), dtype="<f4").reshape(len(rows), -1).astype(np.float64)
