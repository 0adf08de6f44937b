"""Retro-search: the unknown faces in match history that a person, once enrolled, would have been named in.

Each face identify kept is compared with the person as identify compares a face with a person (the person
template rule over their enrolled faces, the engine's threshold). Only the primary embedding is kept in history,
so the fused engine's second look is not applied here. The candidates are the unknown faces near one of the
person's faces (`services.history`: the store's vector index on PostgreSQL, pages of history compared in numpy on
SQLite): a person's distance is never below their nearest face's. Faces a user rejected for the person ("not this
person"), and faces nearer to one of those than to the person, are not their sightings (identify's rule again).

Relabelling (FACEGATE_SIGHTINGS__RELABEL, off by default): when a person is enrolled or gains faces, their past
unknown sightings within a stricter bar than identify's are named as them in history, recorded in
matches.relabelled_at and the audit log.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from facegate.index.base import Hit, per_person
from facegate.services import audit
from facegate.services import matches as matches_service
from facegate.services.accuracy import distance_matrix
from facegate.services.calibration import calibrated_distance
from facegate.services.history import near_history
from facegate.services.people import require_person
from facegate.services.runtime import Runtime
from facegate.services.schemas import SightingPublic, SightingsPage

# Who the audit log names for relabelling: it follows an enrollment, whoever made it.
RELABEL = audit.Actor(key_id=None, address="relabel")


def now() -> datetime:
    return datetime.now(UTC)


def person_sightings(rt: Runtime, person_id: str, *, limit: int, threshold: float | None = None) -> SightingsPage:
    require_person(rt, person_id)
    threshold = rt.engine.info.threshold if threshold is None else threshold
    found, searched = _scan(rt, person_id, threshold)
    best = dict((match_id, score) for score, match_id in found[:limit])
    rows = rt.store.get_matches(best)
    public = {m.id: m for m in matches_service.to_public(rt, rows)}
    items = [
        SightingPublic(match=public[match_id], distance=round(score, 4))
        for match_id, score in sorted(best.items(), key=lambda item: item[1])
        if match_id in public
    ]
    return SightingsPage(items=items, threshold=threshold, searched=searched)


def relabel_distance(rt: Runtime) -> float:
    """The stricter bar for relabelling: `relabel_distance` if set, else the calibrated distance at
    `relabel_false_match_rate`."""
    settings = rt.settings.sightings
    if settings.relabel_distance is not None:
        return settings.relabel_distance
    return calibrated_distance(rt.engine.info, settings.relabel_false_match_rate)


def relabel_sightings(rt: Runtime, person_id: str) -> list[int]:
    """Name the person's past unknown sightings within the stricter bar in history (relabelled_at set, audited).
    Returns the match ids relabelled."""
    found, _ = _scan(rt, person_id, relabel_distance(rt))
    relabelled = rt.store.relabel_matches({match_id: round(score, 4) for score, match_id in found}, person_id, now())
    if relabelled:
        audit.record(rt, RELABEL, "sightings_relabelled", person_id, count=len(relabelled), match_ids=relabelled[:100])
    return relabelled


def _scan(rt: Runtime, person_id: str, threshold: float) -> tuple[list[tuple[float, int]], int]:
    """(person's distance, match id) of the unknown history faces within `threshold`, nearest first; and how many
    unknown faces were searched."""
    info = rt.engine.info
    template = rt.settings.identify.template
    faces = rt.store.list_faces(person_id)
    ids = [f.id for f in faces if (f.engine, f.model_version) == (info.name, info.model_version)]
    stored = list(rt.store.iter_embeddings(info.name, info.model_version, ids=ids)) if ids else []
    if not stored:  # enrolled under another engine only: nothing to compare with until `facegate reindex`
        return [], 0
    vectors = [np.frombuffer(e.vector, dtype="<f4") for e in stored]
    # A person's distance is never below their nearest face's: the faces near one of theirs are the candidates.
    near, searched = near_history(rt, vectors, within=threshold, unknown_only=True, limit=None)
    candidates = sorted({s.match_id: s for hits in near for _, s in hits}.values(), key=lambda s: s.match_id)
    if not candidates:
        return [], searched
    gallery = np.stack(vectors).astype(np.float64)
    probes = np.stack([np.frombuffer(s.embedding, dtype="<f4") for s in candidates]).astype(np.float64)
    distances = distance_matrix(info.metric, probes, gallery)
    rejected = rt.store.rejected_faces([person_id], info.name, info.model_version)
    rejected_ids = {r.match_id for r in rejected}
    nearest_rejected = (
        distance_matrix(
            info.metric,
            probes,
            np.stack([np.frombuffer(r.embedding, dtype="<f4") for r in rejected]).astype(np.float64),
        ).min(axis=1)
        if rejected
        else np.full(len(candidates), np.inf)
    )
    found: list[tuple[float, int]] = []
    for sighting, row, rejected_distance in zip(candidates, distances, nearest_rejected, strict=True):
        hits = [Hit(e.face_id, person_id, float(d)) for e, d in zip(stored, row, strict=True)]
        score = per_person(hits, 1, template)[0].distance
        if score <= threshold and rejected_distance >= score and sighting.match_id not in rejected_ids:
            found.append((score, sighting.match_id))
    found.sort()
    return found, searched
