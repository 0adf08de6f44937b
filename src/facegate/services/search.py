"""Search with a probe photo: the gallery (as identify searches it) and match history (every face identify kept,
named or not, in the current engine's space). Nothing is written: a search is not a sighting.

History is searched by brute force: pages of stored embeddings are compared with the probe faces in numpy, so
memory stays bounded. The embeddings are read from the store on every search, which is what costs (see
bench/search_history.py for the time at 100,000 rows); an ANN index over history (pgvector HNSW on
matches.embedding) is the step after that.
"""

from __future__ import annotations

import time

import numpy as np

from facegate.errors import InvalidInput
from facegate.services import identify as identify_service
from facegate.services.accuracy import distance_matrix
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, HistorySighting, SearchFace, SearchResult

PAGE = 10_000


def search(
    rt: Runtime,
    data: bytes,
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    limit: int | None = None,
    max_faces: int | None = None,
) -> SearchResult:
    settings = rt.settings
    info = rt.engine.info
    threshold = info.threshold if threshold is None else threshold
    top_k = settings.identify.top_k if top_k is None else top_k
    limit = settings.sightings.search_limit if limit is None else limit
    max_faces = settings.identify.max_faces if max_faces is None else max_faces
    if not 0.0 < threshold < 2.0:
        raise InvalidInput("threshold must be between 0 and 2 (a distance).", code="invalid_threshold")
    started = time.perf_counter()
    analysis = rt.engine.analyze(
        data, max_pixels=settings.limits.max_image_pixels, max_faces=max_faces, crops=False, secondary="input"
    )
    rt.telemetry.engine_seconds.labels(operation="search").observe(time.perf_counter() - started)
    candidates, _ = identify_service.search_faces(rt, analysis.faces, threshold=threshold, top_k=top_k)
    probes = [f.embedding for f in analysis.faces]
    found, searched = nearest_in_history(rt, probes, threshold=threshold, limit=limit)
    rows = {m.id: m for m in rt.store.get_matches({match_id for hits in found for _, match_id in hits})}
    names = rt.store.names_of({m.person_id for m in rows.values() if m.person_id})
    faces = []
    for face, face_candidates, hits in zip(analysis.faces, candidates, found, strict=True):
        sightings = [
            HistorySighting(
                match_id=match_id,
                distance=round(distance, 4),
                created_at=rows[match_id].created_at,
                person_id=rows[match_id].person_id,
                name=names.get(rows[match_id].person_id or ""),
                source=rows[match_id].source,
                crop_url=f"/api/v1/matches/{match_id}/crop" if rows[match_id].crop_key else None,
            )
            for distance, match_id in hits
            if match_id in rows  # purged meanwhile
        ]
        faces.append(SearchFace(box=BoxPublic.of(face.box), candidates=face_candidates, sightings=sightings))
    return SearchResult(threshold=threshold, searched=searched, faces=faces)


def nearest_in_history(
    rt: Runtime, probes: list[np.typing.NDArray[np.float32]], *, threshold: float, limit: int
) -> tuple[list[list[tuple[float, int]]], int]:
    """Per probe, up to `limit` (distance, match id) of history faces within `threshold`, nearest first; and how
    many history faces were compared."""
    info = rt.engine.info
    found: list[list[tuple[float, int]]] = [[] for _ in probes]
    if not probes:
        return found, 0
    queries = np.stack(probes).astype(np.float32)
    searched, after = 0, 0
    while page := rt.store.sightings(info.name, info.model_version, unknown_only=False, after_id=after, limit=PAGE):
        after = page[-1].match_id
        searched += len(page)
        gallery = np.frombuffer(b"".join(s.embedding for s in page), dtype="<f4").reshape(len(page), -1)
        distances = distance_matrix(info.metric, queries.astype(np.float64), gallery.astype(np.float64))
        for i, row in enumerate(distances):
            within = np.flatnonzero(row <= threshold)
            if len(within) > limit:
                within = within[np.argpartition(row[within], limit - 1)[:limit]]
            merged = found[i] + [(float(row[j]), page[j].match_id) for j in within]
            found[i] = sorted(merged)[:limit]
    return found, searched
