""" "Not this person": a user says the face of a named match is not that person. The face (its embedding) is kept
as a rejected face of the person, and the match becomes an unknown face.

Identify then withholds the person's name from a later face that is closer to one of the person's rejected
faces than to the person (the person's distance by identify's own rule): the same stranger, seen again, is not
named again, while the person's own photos, nearer to their enrolled faces, still are. The person stays in the
candidates, flagged `rejected_lookalike`, and the face's `reason` says why it went unnamed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from facegate.config import Metric
from facegate.services.accuracy import distance_matrix
from facegate.services.matches import to_public
from facegate.services.runtime import Runtime
from facegate.services.schemas import Candidate, MatchPublic


def reject_match(rt: Runtime, match_id: int) -> tuple[MatchPublic, str]:
    """Record that the face of `match_id` is not its person; returns the match (now unknown, rejected) and the
    person it is not."""
    row, person_id = rt.store.reject_match(match_id, datetime.now(UTC))
    return to_public(rt, [row])[0], person_id


def lookalike(
    metric: Metric, probe: npt.NDArray[np.float32], rejected: list[npt.NDArray[np.float32]], person_distance: float
) -> bool:
    """True when the probe is closer to one of a person's rejected faces than to the person."""
    if not rejected:
        return False
    distances = distance_matrix(metric, probe[None, :].astype(np.float64), np.stack(rejected).astype(np.float64))
    return bool(distances.min() < person_distance)


def screen(
    rt: Runtime, probes: list[npt.NDArray[np.float32]], candidates: list[list[Candidate]], threshold: float
) -> list[list[Candidate]]:
    """Flag, in each face's candidates, the people within `threshold` the face is a rejected lookalike of. Only
    people a face would be named as are looked at, so a gallery with no rejections costs one small query."""
    near = {c.person_id for found in candidates for c in found if c.distance <= threshold}
    if not near:
        return candidates
    info = rt.engine.info
    rejected: dict[str, list[npt.NDArray[np.float32]]] = {}
    for face in rt.store.rejected_faces(near, info.name, info.model_version):
        rejected.setdefault(face.person_id, []).append(np.frombuffer(face.embedding, dtype="<f4"))
    if not rejected:
        return candidates
    return [
        [
            c.model_copy(update={"rejected_lookalike": True})
            if c.distance <= threshold and lookalike(info.metric, probe, rejected.get(c.person_id, []), c.distance)
            else c
            for c in found
        ]
        for probe, found in zip(probes, candidates, strict=True)
    ]


def named(candidates: list[Candidate], threshold: float) -> Candidate | None:
    """The match: the nearest candidate within the threshold that is not a rejected lookalike."""
    for c in candidates:
        if c.distance > threshold:
            return None
        if not c.rejected_lookalike:
            return c
    return None


def withheld(candidates: list[Candidate], threshold: float) -> bool:
    """True when a face went unnamed only because of rejections."""
    return any(c.rejected_lookalike and c.distance <= threshold for c in candidates)
