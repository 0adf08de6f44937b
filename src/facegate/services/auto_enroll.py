"""Safe auto-enrollment (opt-in, FACEGATE_AUTO_ENROLL__*): identify adds a face to the person it was matched to,
to follow ageing and new looks, only when every gate holds:

- the match is sure: its distance is at most `max_distance` (by default the calibrated distance at a per-pair
  false-match rate 100x below identify's), far from the threshold, and it is not a rejected lookalike;
- the face is good: enrollment would accept it (size, blur, detector score) and its quality is `min_quality`+;
- it looks different: at least `min_face_distance` from every face the person has (a copy adds nothing);
- the person has fewer than `max_faces` auto-enrolled faces.

The photo is stored as an enrolled photo of the person with this one face (both descriptors under the fused
engine), marked `auto`: GET /people/{id}/faces lists the flag and DELETE /people/{id}/faces/{face_id} removes it.
Each addition is audited (`face_auto_enrolled`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace

import numpy as np

from facegate.errors import Conflict, NotFound
from facegate.services import audit
from facegate.services.accuracy import distance_matrix
from facegate.services.calibration import calibrated_distance
from facegate.services.enroll import EXTENSIONS, new_faces
from facegate.services.runtime import Runtime
from facegate.services.schemas import IdentifiedFace, IdentifyResult
from facegate.store.base import NewImage
from facegate.vision.analysis import FaceAnalysis, ImageAnalysis
from facegate.vision.images import probe
from facegate.vision.quality import enrollment_rejection

AUTO = audit.Actor(key_id=None, address="auto-enroll")


def max_distance(rt: Runtime) -> float:
    settings = rt.settings.auto_enroll
    if settings.max_distance is not None:
        return min(settings.max_distance, rt.engine.info.threshold)
    return calibrated_distance(rt.engine.info, settings.false_match_rate)


def consider(rt: Runtime, data: bytes, analysis: ImageAnalysis, result: IdentifyResult) -> list[int]:
    """Auto-enroll the faces of an identify that pass every gate; the ids of the faces added."""
    if not rt.settings.auto_enroll.enabled:
        return []
    bar = max_distance(rt)
    added: list[int] = []
    for face, identified in zip(analysis.faces, result.faces, strict=True):
        if _eligible(rt, face, identified, bar):
            added += _add(rt, data, analysis, face, identified)
    if added:
        rt.sync_index_after_write()
    return added


def _eligible(rt: Runtime, face: FaceAnalysis, identified: IdentifiedFace, bar: float) -> bool:
    settings = rt.settings.auto_enroll
    match = identified.match
    if match is None or match.distance > bar or face.quality < settings.min_quality:
        return False
    if enrollment_rejection(face.box, face.detector_score, face.sharpness, rt.settings.enroll):
        return False
    info = rt.engine.info
    try:
        faces = [
            f
            for f in rt.store.list_faces(match.person_id)
            if (f.engine, f.model_version) == (info.name, info.model_version)
        ]
    except NotFound:  # deleted meanwhile
        return False
    if sum(f.auto for f in faces) >= settings.max_faces or not faces:
        return False
    stored = list(rt.store.iter_embeddings(info.name, info.model_version, ids=[f.id for f in faces]))
    gallery = np.stack([np.frombuffer(e.vector, dtype="<f4") for e in stored]).astype(np.float64)
    nearest = distance_matrix(info.metric, face.embedding[None, :].astype(np.float64), gallery).min()
    return bool(nearest >= settings.min_face_distance)


def _add(
    rt: Runtime, data: bytes, analysis: ImageAnalysis, face: FaceAnalysis, identified: IdentifiedFace
) -> list[int]:
    info = rt.engine.info
    match = identified.match
    assert match is not None
    if info.secondary is not None and face.secondary is None and face.secondary_input is not None:
        # A sure match was never rescored, so its second descriptor was not computed: the fused engine's
        # gallery keeps both for every face.
        face = replace(face, secondary=rt.engine.embed_secondary([face.secondary_input])[0])
    image_id = str(uuid.uuid4())
    extension = EXTENSIONS.get(probe(data, rt.settings.limits.max_image_pixels).format, ".img")
    image = NewImage(
        id=image_id,
        blob_key=f"images/{image_id[:2]}/{image_id}{extension}",
        sha256=hashlib.sha256(data).hexdigest(),
        filename=f"auto-match-{identified.match_id}{extension}",
        width=analysis.width,
        height=analysis.height,
        faces=[replace(f, auto=True) for f in new_faces(face, info)],
    )
    rt.put_blobs([(image.blob_key, data)])
    try:
        _, faces = rt.store.save_enrollment(match.person_id, [image])
    except (Conflict, NotFound):  # the photo is already theirs (another face of it), or the person is gone
        rt.discard_blobs([image.blob_key])
        return []
    ids = [f.id for f in faces]
    audit.record(
        rt,
        AUTO,
        "face_auto_enrolled",
        match.person_id,
        face_ids=ids,
        match_id=identified.match_id,
        distance=match.distance,
    )
    return ids
