"""Re-embed stored photos with the current engine, so people enrolled under another engine (or model
version) become searchable after a switch. Embeddings of different engines are never compared."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from facegate.errors import FacegateError
from facegate.services.enroll import new_face, pick_face
from facegate.services.runtime import Runtime
from facegate.store.base import ImageRow, NewFace
from facegate.vision.analysis import ImageAnalysis

BATCH = 32


@dataclass
class ReindexResult:
    images: int
    added: int
    failed: list[str]


def images_without_current_embedding(rt: Runtime) -> list[str]:
    info = rt.engine.info
    return rt.store.images_missing_embedding(info.name, info.model_version)


def reindex(rt: Runtime, progress: Callable[[int], None] | None = None) -> ReindexResult:
    info = rt.engine.info
    pending = images_without_current_embedding(rt)
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
            except FacegateError as exc:  # the photo itself is gone: report it, carry on
                result.failed.append(f"{image.blob_key}: {exc.code}")
                continue
            submitted.append((image, rt.engine.submit(data, max_pixels=limit, max_faces=1, crops=False)))
        faces: list[tuple[str, NewFace]] = []
        for image, future in submitted:
            try:
                face, reason = pick_face(rt.engine.wait(future), rt.settings.enroll)
            except FacegateError as exc:
                face, reason = None, exc.code
            if face is None:
                result.failed.append(f"{image.blob_key}: {reason}")
                continue
            faces.append((image.id, new_face(face, info)))
        if faces:
            result.added += len(rt.store.add_faces(faces))
        if progress:
            progress(len(chunk))
    rt.sync_index_after_write()
    return result
