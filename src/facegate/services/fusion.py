"""The fused engine's second look: when SFace is unsure of a face, its dlib descriptor is computed and every
candidate is rescored with both (`FusionRule`). Faces SFace is sure of cost what SFace alone costs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from facegate.index.base import Hit
from facegate.services.runtime import Runtime
from facegate.vision.analysis import FaceAnalysis
from facegate.vision.engine import distance


def rescore(
    rt: Runtime, faces: list[FaceAnalysis], hits: list[list[Hit]], threshold: float
) -> tuple[list[list[Hit]], list[bool]]:
    """Hits per face, nearest first, fused where the primary distance of the nearest hit is unsure; and which
    faces were fused. A stored face without a second descriptor (enrolled under another engine, before
    `facegate reindex`) keeps its primary distance."""
    info = rt.engine.info
    rule, secondary = info.fusion, info.secondary
    fused = [False] * len(faces)
    if rule is None or secondary is None:
        return hits, fused
    unsure = [
        (i, face.secondary_input)
        for i, (face, face_hits) in enumerate(zip(faces, hits, strict=True))
        if face_hits and face.secondary_input is not None and rule.unsure(face_hits[0].distance, threshold)
    ]
    if not unsure:
        return hits, fused
    probes = rt.engine.embed_secondary([chip for _, chip in unsure])
    face_ids = {h.face_id for i, _ in unsure for h in hits[i]}
    stored = rt.store.sibling_embeddings(face_ids, secondary.name, secondary.model_version)
    result = list(hits)
    for (i, _), probe in zip(unsure, probes, strict=True):
        rescored = []
        for hit in hits[i]:
            vector = stored.get(hit.face_id)
            if vector is None:
                rescored.append(hit)
                continue
            d2 = distance(secondary.metric, probe, np.frombuffer(vector, dtype="<f4"))
            rescored.append(replace(hit, distance=rule.fused(hit.distance, d2)))
        result[i] = sorted(rescored, key=lambda h: h.distance)
        fused[i] = True
    return result, fused
