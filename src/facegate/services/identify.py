"""Identify: every face in a photo, its nearest enrolled people, and a match when close enough.

Every call is written to match history, unknown faces included, with the face crop.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from facegate.errors import InvalidInput, NotFound
from facegate.index.base import per_person
from facegate.services import auto_enroll, rejections
from facegate.services.fusion import rescore
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, Candidate, IdentifiedFace, IdentifyResult, UnknownReason
from facegate.store.base import NewMatch, StoredCandidate
from facegate.vision.analysis import FaceAnalysis, ImageAnalysis
from facegate.vision.engine import confidence
from facegate.vision.quality import enrollment_rejection

log = logging.getLogger(__name__)

# Faces fetched from the index per wanted person, so that one person's many faces do not crowd others out.
FACES_PER_PERSON = 8


def identify(
    rt: Runtime,
    data: bytes,
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    max_faces: int | None = None,
    source: str = "api",
) -> IdentifyResult:
    settings = rt.settings
    info = rt.engine.info
    threshold = info.threshold if threshold is None else threshold
    top_k = settings.identify.top_k if top_k is None else top_k
    max_faces = settings.identify.max_faces if max_faces is None else max_faces
    if not 0.0 < threshold < 2.0:
        raise InvalidInput("threshold must be between 0 and 2 (a distance).", code="invalid_threshold")
    if not 1 <= top_k <= 100:
        raise InvalidInput("top_k must be between 1 and 100.", code="invalid_top_k")
    if not 1 <= max_faces <= 200:
        raise InvalidInput("max_faces must be between 1 and 200.", code="invalid_max_faces")

    started = time.perf_counter()
    analysis = rt.engine.analyze(
        data,
        max_pixels=settings.limits.max_image_pixels,
        max_faces=max_faces,
        crops=settings.identify.keep_crops,
        secondary="input",
    )
    rt.telemetry.engine_seconds.labels(operation="identify").observe(time.perf_counter() - started)
    try:
        result = match_and_record(rt, analysis, threshold=threshold, top_k=top_k, source=source)
    except NotFound:
        # A matched person was deleted between the search and the history write; search again without them.
        result = match_and_record(rt, analysis, threshold=threshold, top_k=top_k, source=source)
    auto_enroll.consider(rt, data, analysis, result)  # opt-in (FACEGATE_AUTO_ENROLL__ENABLED)
    return result


def search_faces(
    rt: Runtime, faces: list[FaceAnalysis], *, threshold: float, top_k: int
) -> tuple[list[list[Candidate]], list[bool]]:
    """Each face's candidates (one per person, nearest first) and whether the fused engine rescored it. A hit
    whose person was deleted after the search is dropped rather than reported."""
    rt.sync_index_if_due()
    searched = [rt.index.search(f.embedding, top_k * FACES_PER_PERSON) for f in faces]
    searched, fused = rescore(rt, faces, searched, threshold)
    per_face = [per_person(hits, top_k, rt.settings.identify.template) for hits in searched]
    names = rt.store.names_of({h.person_id for hits in per_face for h in hits})
    candidates = [
        [
            Candidate(
                person_id=h.person_id,
                name=names[h.person_id],
                distance=round(h.distance, 4),
                confidence=round(confidence(h.distance, threshold), 4),
            )
            for h in hits
            if h.person_id in names
        ]
        for hits in per_face
    ]
    return rejections.screen(rt, [f.embedding for f in faces], candidates, threshold), fused


def match_and_record(
    rt: Runtime,
    analysis: ImageAnalysis,
    *,
    threshold: float,
    top_k: int,
    source: str,
    request_id: str | None = None,
    decided: list[Candidate | None] | None = None,
    replace: int | None = None,
    recorded_person_id: str | None = None,
) -> IdentifyResult:
    """Search every analysed face and write one match-history row each. `decided`: the match of each face when
    the caller has already decided it (a video track, by its vote over many frames; None = unknown); by
    default the nearest candidate within `threshold`. `request_id`: the rows' (a video track's id).
    `replace`: the id of the row this (single) face rewrites rather than adding one (a video track's row, first
    written when the track was announced); its old crop is deleted once the row points at the new one.
    `recorded_person_id`: whom the caller recorded in that row last (a ruling made since on the row stands).
    NotFound(match_not_found) when that row is gone; NotFound(person_not_found) when a matched person was."""
    info = rt.engine.info
    request_id = request_id or str(uuid.uuid4())
    if replace is not None and len(analysis.faces) != 1:
        raise ValueError("a history row is replaced by exactly one face")
    per_face, fused = search_faces(rt, analysis.faces, threshold=threshold, top_k=top_k)
    now = datetime.now(UTC)
    crops: list[tuple[str, bytes]] = []
    faces: list[IdentifiedFace] = []
    records: list[NewMatch] = []
    for i, (face, candidates, was_fused) in enumerate(zip(analysis.faces, per_face, fused, strict=True)):
        match = decided[i] if decided is not None else rejections.named(candidates, threshold)
        crop_key = None
        if face.crop_jpeg is not None:
            # A rewritten row's crop gets a key of its own: the old one stays whole until the row moves over.
            version = f"-{uuid.uuid4().hex[:8]}" if replace is not None else ""
            crop_key = f"crops/{now:%Y/%m/%d}/{request_id}-{i}{version}.jpg"
            crops.append((crop_key, face.crop_jpeg))
        box = face.box
        records.append(
            NewMatch(
                request_id=request_id,
                source=source,
                created_at=now,
                person_id=match.person_id if match else None,
                distance=match.distance if match else None,
                confidence=match.confidence if match else None,
                threshold=threshold,
                left=box.left,
                top=box.top,
                width=box.width,
                height=box.height,
                quality=face.quality,
                engine=info.name,
                model_version=info.model_version,
                candidates=[StoredCandidate(c.person_id, c.distance) for c in candidates],
                crop_key=crop_key,
                embedding=face.embedding.astype("<f4").tobytes(),
            )
        )
        faces.append(
            IdentifiedFace(
                box=BoxPublic.of(box),
                quality=face.quality,
                match=match,
                candidates=candidates,
                reason=None if match else _unknown_reason(rt, face, candidates, threshold),
                decided_by="fusion" if was_fused else info.name,
            )
        )
    if records:
        rt.put_blobs(crops, durable=rt.settings.identify.durable_crops)
        replaced: str | None = None
        try:
            if replace is None:
                match_ids = rt.store.add_matches(records)
            else:
                replaced, match_ids = (
                    rt.store.replace_match(replace, records[0], recorded_person_id=recorded_person_id),
                    [replace],
                )
        except BaseException:
            rt.discard_blobs([key for key, _ in crops])
            raise
        if replaced is not None:
            rt.discard_blobs([replaced])
        for face_out, match_id in zip(faces, match_ids, strict=True):
            face_out.match_id = match_id
    if replace is None:  # a rewritten sighting was counted when it was first written
        for face_out in faces:
            rt.telemetry.faces_identified.labels(result="known" if face_out.match else "unknown").inc()
    return IdentifyResult(
        request_id=request_id, width=analysis.width, height=analysis.height, threshold=threshold, faces=faces
    )


def _unknown_reason(rt: Runtime, face: FaceAnalysis, candidates: list[Candidate], threshold: float) -> UnknownReason:
    """Why a face came back unknown. A face enrollment would refuse (too small, blurred, faint) is reported as
    low_quality first: its distances say little, and a better photo is what helps."""
    if enrollment_rejection(face.box, face.detector_score, face.sharpness, rt.settings.enroll):
        return "low_quality"
    if rejections.withheld(candidates, threshold):
        return "rejected_lookalike"
    return "above_threshold" if candidates else "no_candidate"
