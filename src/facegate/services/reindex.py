"""Re-embed stored photos with the current engine, so people enrolled under another engine (or model
version) become searchable after a switch. Embeddings of different engines are never compared."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, select

from facegate.errors import FacegateError
from facegate.services.enroll import face_record, pick_face
from facegate.services.runtime import Runtime
from facegate.store.models import FaceRecord, ImageRecord
from facegate.vision.analysis import ImageAnalysis

BATCH = 32


@dataclass
class ReindexResult:
    images: int
    added: int
    failed: list[str]


def images_without_current_embedding(rt: Runtime) -> list[str]:
    info = rt.engine.info
    current = and_(
        FaceRecord.image_id == ImageRecord.id,
        FaceRecord.engine == info.name,
        FaceRecord.model_version == info.model_version,
    )
    with rt.db.session() as session:
        query = select(ImageRecord.id).where(~select(FaceRecord.id).where(current).exists()).order_by(ImageRecord.id)
        return list(session.scalars(query).all())


def reindex(rt: Runtime, progress: Callable[[int], None] | None = None) -> ReindexResult:
    info = rt.engine.info
    pending = images_without_current_embedding(rt)
    result = ReindexResult(images=len(pending), added=0, failed=[])
    for start in range(0, len(pending), BATCH):
        with rt.index_writes, rt.db.session() as session:
            images = [session.get_one(ImageRecord, image_id) for image_id in pending[start : start + BATCH]]
            submitted: list[tuple[ImageRecord, Future[ImageAnalysis]]] = []
            for image in images:
                try:
                    data = rt.blobs.get(image.blob_key)
                except FacegateError as exc:  # the photo itself is gone: report it, carry on
                    result.failed.append(f"{image.blob_key}: {exc.code}")
                    continue
                limit = rt.settings.limits.max_image_pixels
                submitted.append((image, rt.engine.submit(data, max_pixels=limit, max_faces=1, crops=False)))
            records, vectors = [], []
            for image, future in submitted:
                try:
                    face, reason = pick_face(rt.engine.wait(future), rt.settings.enroll)
                except FacegateError as exc:
                    face, reason = None, exc.code
                if face is None:
                    result.failed.append(f"{image.blob_key}: {reason}")
                    continue
                record = face_record(image.person_id, image, face, info)
                session.add(record)
                records.append(record)
                vectors.append(face.embedding)
            session.flush()
            ids = [r.id for r in records]
            if ids:
                rt.index.add(ids, [r.person_id for r in records], np.stack(vectors).astype(np.float32))
        # Counted once committed; had the commit failed, the exception would have ended the run here.
        result.added += len(ids)
        if progress:
            progress(len(images))
    rt.telemetry.index_size.set(len(rt.index))
    return result
