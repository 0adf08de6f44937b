"""Search with a probe photo: the gallery (as identify searches it) and match history (every face identify kept,
named or not, in the current engine's space; `services.history`). Nothing is written: a search is not a sighting.
"""

from __future__ import annotations

import time

from facegate.errors import InvalidInput
from facegate.services import identify as identify_service
from facegate.services.history import near_history
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, HistorySighting, SearchFace, SearchResult


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
    found, searched = near_history(rt, probes, within=threshold, unknown_only=False, limit=limit)
    rows = {m.id: m for m in rt.store.get_matches({s.match_id for hits in found for _, s in hits})}
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
            for distance, match_id in ((d, s.match_id) for d, s in hits)
            if match_id in rows  # purged meanwhile
        ]
        faces.append(SearchFace(box=BoxPublic.of(face.box), candidates=face_candidates, sightings=sightings))
    return SearchResult(threshold=threshold, searched=searched, faces=faces)
