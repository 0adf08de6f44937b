"""Re-embed stored photos with the current engine, so people enrolled under another engine (or model
version) become searchable after a switch. Embeddings of different engines are never compared. With the fused
engine, photos that lack either descriptor get the missing one."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from facegate.errors import FacegateError
from facegate.services.enroll import new_faces, pick_face
from facegate.services.runtime import Runtime
from facegate.store.base import ImageRow, NewFace
from facegate.vision.analysis import ImageAnalysis

BATCH = 32


@dataclass
class ReindexResult:
    images: int
    added: int
    failed: list[str]


def missing_embeddings(rt: Runtime) -> dict[str, set[tuple[str, str]]]:
    """Image id -> the (engine, model_version) embeddings the current engine wants and the image lacks."""
    info = rt.engine.info
    missing: dict[str, set[tuple[str, str]]] = {}
    for space in (info, info.secondary):
        if space is not None:
            for image_id in rt.store.images_missing_embedding(space.name, space.model_version):
                missing.setdefault(image_id, set()).add((space.name, space.model_version))
    return missing


def reindex(rt: Runtime, progress: Callable[[int], None] | None = None) -> ReindexResult:
    info = rt.engine.info
    missing = missing_embeddings(rt)
    pending = sorted(missing)
    result = ReindexResult(images=len(pending), added=0, failed=[])
    limit = rt.settings.limits.max_image_pixels
    for start in range(0, len(pending), BATCH):
        chunk = pending[start : start + BATCH]
        submitted: list[tuple[ImageRow, Future[ImageAnalysis]]] = []
        for image_id in chunk:
            image = rt.store.get_image(image_id)
            if image is None:  # deleted meanwhile
                continue
            try:
                data = rt.blobs.get(image.blob_key)
                future = rt.engine.submit(data, max_pixels=limit, max_faces=1, crops=False, secondary="embed")
            except FacegateError as exc:  # the photo is gone, or refused under today's limits: report it, carry on
                result.failed.append(f"{image.blob_key}: {exc.code}")
                continue
            submitted.append((image, future))
        faces: list[tuple[str, NewFace]] = []
        for image, future in submitted:
            try:
                face, reason = pick_face(rt.engine.wait(future), rt.settings.enroll)
            except FacegateError as exc:
                face, reason = None, exc.code
            if face is None:
                result.failed.append(f"{image.blob_key}: {reason}")
                continue
            wanted = missing[image.id]
            faces += [(image.id, f) for f in new_faces(face, info) if (f.engine, f.model_version) in wanted]
        if faces:
            result.added += len(rt.store.add_faces(faces))
        if progress:
            progress(len(chunk))
    rt.sync_index_after_write()
    return result
