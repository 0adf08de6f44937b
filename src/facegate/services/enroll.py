"""Enroll: photos in, one face per photo stored for a new or existing person, all or nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from facegate.config import EnrollSettings
from facegate.errors import (
    Conflict,
    FacegateError,
    InvalidInput,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedImage,
)
from facegate.services import sightings
from facegate.services.people import require_person, to_public
from facegate.services.runtime import Runtime
from facegate.services.schemas import BoxPublic, EnrollResult, FacePublic, Rejection, Upload
from facegate.store.base import NewFace, NewImage, PersonCreate
from facegate.vision.analysis import FaceAnalysis, ImageAnalysis
from facegate.vision.engine import Box, EngineInfo
from facegate.vision.images import probe
from facegate.vision.quality import enrollment_rejection

log = logging.getLogger(__name__)

EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "GIF": ".gif",
}
# When every photo is rejected, the error names the most specific reason found, in this order.
REASON_PRIORITY = ["multiple_faces", "face_too_small", "blurry", "low_quality", "duplicate_image", "no_face"]


@dataclass
class _Accepted:
    upload: Upload
    sha256: str
    extension: str
    analysis: ImageAnalysis
    face: FaceAnalysis


def parse_metadata(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"metadata is not valid JSON: {exc.msg}.", code="invalid_metadata") from exc
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object.", code="invalid_metadata")
    return value


def pick_face(analysis: ImageAnalysis, rules: EnrollSettings) -> tuple[FaceAnalysis | None, str | None]:
    """The one face to enroll from a photo, or the reason there is none."""
    if not analysis.faces:
        return None, "no_face"
    if len(analysis.boxes) > 1 and (rules.multiple_faces == "reject" or not dominates(analysis, rules)):
        return None, "multiple_faces"
    face = analysis.faces[0]
    reason = enrollment_rejection(face.box, face.detector_score, face.sharpness, rules)
    return (None, reason) if reason else (face, None)


def centre_offset(box: Box, width: int, height: int) -> float:
    """Distance from the box's centre to the photo's centre, in fractions of the photo's width and height
    (0 at the centre, 0.5 at the middle of an edge, ~0.71 in a corner)."""
    dx = (box.left + box.width / 2) / width - 0.5
    dy = (box.top + box.height / 2) / height - 0.5
    return math.hypot(dx, dy)


def cut_by_edge(box: Box, width: int, height: int) -> bool:
    return box.left <= 0 or box.top <= 0 or box.left + box.width >= width or box.top + box.height >= height


def dominates(analysis: ImageAnalysis, rules: EnrollSettings) -> bool:
    """Whether the largest face is clearly the photo's subject, so that a person would not hesitate.

    - A face cut by the photo's edge away from its centre is a bystander leaning in (a selfie's corner): it
      never counts as the subject, however large. A central face that touches the edge is a close-up or an
      aligned crop (LFW's funneled photos), not a bystander.
    - The largest face is the subject when it is `dominant_ratio` x the area of every other face.
    - Otherwise, when the photo is framed on it (its centre within `central_offset` of the photo's centre) and
      only one other face comes close in size, that face lying at least `central_margin` farther from the
      centre: centrality counts as `central_weight` x its area against that face.
    Two people of comparable size side by side, or a group, are refused. Only geometry is used: enroll
    analyses the largest face alone, so the others have no score or sharpness here (see EnrollSettings).
    """
    width, height = analysis.width, analysis.height
    largest, others = analysis.boxes[0], analysis.boxes[1:]
    offset = centre_offset(largest, width, height)
    central = offset < rules.central_offset
    if not central and cut_by_edge(largest, width, height):
        return False
    rivals = [b for b in others if largest.area < rules.dominant_ratio * b.area]
    if not rivals:
        return True
    if not central or len(rivals) > 1:
        return False
    [rival] = rivals
    return (
        centre_offset(rival, width, height) >= offset + rules.central_margin
        and largest.area * rules.central_weight >= rules.dominant_ratio * rival.area
    )


def _all_rejected_error(rejected: list[Rejection], image_errors: list[FacegateError]) -> FacegateError:
    detail = "; ".join(f"{r.filename}: {r.reason}" for r in rejected)
    if len(image_errors) == len(rejected) and image_errors:
        return image_errors[0]
    reasons = {r.reason for r in rejected}
    code = next((r for r in REASON_PRIORITY if r in reasons), "no_face")
    return Unprocessable(f"No usable face in the uploaded images ({detail}).", code=code)


def enroll(
    rt: Runtime,
    uploads: list[Upload],
    *,
    name: str | None = None,
    person_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    external_id: str | None = None,
    sync_index: bool = True,
) -> EnrollResult:
    """`sync_index`: bring this process's index level after the commit (the default). A batch of enrollments
    (`facegate enroll`) may pass False and call `rt.sync_index_after_write()` once at the end: nothing is lost
    meanwhile, the faces are in the store's change log, which the index follows."""
    settings = rt.settings
    if (name is None) == (person_id is None):
        raise InvalidInput("Give either name (new person) or person_id (add faces).", code="name_or_person_id")
    if name is not None and not name.strip():
        raise InvalidInput("name must not be empty.", code="invalid_name")
    if not uploads:
        raise InvalidInput("At least one image is required.", code="missing_image")
    if len(uploads) > settings.limits.max_images_per_enroll:
        raise InvalidInput(
            f"At most {settings.limits.max_images_per_enroll} images per enrollment.", code="too_many_images"
        )
    if person_id is not None:
        require_person(rt, person_id)
    if external_id and rt.store.find_person_by_external_id(external_id):
        raise Conflict(f"external_id {external_id!r} is already in use.", code="external_id_taken")

    accepted, rejected = _analyze(rt, uploads, person_id)
    if not accepted:
        image_errors = [e for e in (r[1] for r in rejected) if e is not None]
        raise _all_rejected_error([r[0] for r in rejected], image_errors)
    result = _store(
        rt,
        accepted,
        [r[0] for r in rejected],
        name=name,
        person_id=person_id,
        metadata=metadata or {},
        external_id=external_id,
        sync_index=sync_index,
    )
    if rt.settings.sightings.relabel:  # the person's past unknown sightings, at a stricter bar than identify's
        sightings.relabel_sightings(rt, result.person.id)
    rt.telemetry.enrolled_faces.inc(len(result.faces))
    for r in result.rejected:
        rt.telemetry.rejected_images.labels(reason=r.reason).inc()
    return result


def _analyze(
    rt: Runtime, uploads: list[Upload], person_id: str | None
) -> tuple[list[_Accepted], list[tuple[Rejection, FacegateError | None]]]:
    limits = rt.settings.limits
    rejected: list[tuple[Rejection, FacegateError | None]] = []
    pending: list[tuple[Upload, str, str, Future[ImageAnalysis]]] = []
    seen: set[str] = set()
    for upload in uploads:
        sha = hashlib.sha256(upload.data).hexdigest()
        try:
            header = probe(upload.data, limits.max_image_pixels)
        except (UnsupportedImage, PayloadTooLarge) as exc:
            rejected.append((Rejection(filename=upload.filename, reason=exc.code, message=exc.message), exc))
            continue
        duplicate = sha in seen
        if not duplicate and person_id is not None:
            duplicate = rt.store.image_exists(person_id, sha)
        if duplicate:
            rejected.append(
                (
                    Rejection(
                        filename=upload.filename,
                        reason="duplicate_image",
                        message="This photo is already enrolled for this person.",
                    ),
                    None,
                )
            )
            continue
        seen.add(sha)
        try:
            future = rt.engine.submit(
                upload.data, max_pixels=limits.max_image_pixels, max_faces=1, crops=False, secondary="embed"
            )
        # Refused from its header (too large to decode) or a photo that crashed an engine worker before: this
        # photo only.
        except (UnsupportedImage, PayloadTooLarge) as exc:
            rejected.append((Rejection(filename=upload.filename, reason=exc.code, message=exc.message), exc))
            continue
        pending.append((upload, sha, EXTENSIONS.get(header.format, ".img"), future))

    accepted: list[_Accepted] = []
    for upload, sha, ext, future in pending:
        started = time.perf_counter()
        try:
            analysis = rt.engine.wait(future)
        except (UnsupportedImage, PayloadTooLarge) as exc:
            rejected.append((Rejection(filename=upload.filename, reason=exc.code, message=exc.message), exc))
            continue
        rt.telemetry.engine_seconds.labels(operation="enroll").observe(time.perf_counter() - started)
        face, reason = pick_face(analysis, rt.settings.enroll)
        if face is None:
            assert reason is not None
            rejected.append((Rejection(filename=upload.filename, reason=reason, message=_REASON_TEXT[reason]), None))
            continue
        accepted.append(_Accepted(upload, sha, ext, analysis, face))
    return accepted, rejected


_REASON_TEXT = {
    "no_face": "No face was found in this photo.",
    "multiple_faces": "Several faces and none clearly dominant; use a photo of this person alone.",
    "face_too_small": "The face is too small; use a closer or larger photo.",
    "low_quality": "The face is not clear enough (detector confidence too low).",
    "blurry": "The face is blurred; use a sharper photo.",
}


def new_faces(face: FaceAnalysis, info: EngineInfo) -> list[NewFace]:
    """The stored form of one face: its box, quality, and embedding tagged with the engine that made it; with
    the fused engine, a second row holds the second descriptor (tagged with its own engine)."""
    box = face.box
    embeddings = [(info, face.embedding)]
    if info.secondary is not None and face.secondary is not None:
        embeddings.append((info.secondary, face.secondary))
    return [
        NewFace(
            left=box.left,
            top=box.top,
            width=box.width,
            height=box.height,
            quality=face.quality,
            detector_score=face.detector_score,
            sharpness=face.sharpness,
            engine=space.name,
            model_version=space.model_version,
            embedding=vector.astype("<f4").tobytes(),
        )
        for space, vector in embeddings
    ]


def _store(
    rt: Runtime,
    accepted: list[_Accepted],
    rejected: list[Rejection],
    *,
    name: str | None,
    person_id: str | None,
    metadata: dict[str, Any],
    external_id: str | None,
    sync_index: bool = True,
) -> EnrollResult:
    """Photos first (recorded as pending), then every row in one transaction, then (with `sync_index`) the index
    from the change log. A failure before the commit removes the photos; a crash leaves them pending for the
    sweep."""
    info = rt.engine.info
    target: PersonCreate | str
    if person_id is not None:
        target = person_id
    else:
        assert name is not None
        target = PersonCreate(name=name.strip(), external_id=external_id or None, metadata=metadata)
    images: list[NewImage] = []
    for item in accepted:
        image_id = str(uuid.uuid4())
        # Keys do not name the person: a person's photos are found through the rows, and a key stays valid
        # whoever the photo ends up belonging to.
        images.append(
            NewImage(
                id=image_id,
                blob_key=f"images/{image_id[:2]}/{image_id}{item.extension}",
                sha256=item.sha256,
                filename=item.upload.filename[:300],
                width=item.analysis.width,
                height=item.analysis.height,
                faces=new_faces(item.face, info),
            )
        )
    keys = [image.blob_key for image in images]
    rt.put_blobs([(image.blob_key, item.upload.data) for image, item in zip(images, accepted, strict=True)])
    try:
        person, faces = rt.store.save_enrollment(target, images)
    except BaseException:
        rt.discard_blobs(keys)
        raise
    if sync_index:
        rt.sync_index_after_write()
    public_faces = [
        FacePublic(
            id=f.id,
            box=BoxPublic(left=f.left, top=f.top, width=f.width, height=f.height),
            quality=f.quality,
            filename=item.upload.filename,
        )
        # One face per photo in the answer: the primary embedding's row (the fused engine stores two).
        for f, item in zip(
            [f for f in faces if (f.engine, f.model_version) == (info.name, info.model_version)], accepted, strict=True
        )
    ]
    return EnrollResult(person=to_public(person), faces=public_faces, rejected=rejected)
