"""services.reindex: photos stored under one engine are re-embedded for another; nothing is compared across."""

from __future__ import annotations

from pathlib import Path

from facegate.config import DlibEngineSettings, Settings
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import reindex as reindex_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.vision.pool import EnginePool


def test_reindex_makes_people_enrolled_under_another_engine_searchable(
    settings: Settings, runtime: Runtime, dlib_pool: EnginePool, dev: Path
) -> None:
    photos = [dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg"]
    powell = enroll_service.enroll(runtime, [Upload(p.name, p.read_bytes()) for p in photos], name="Powell")
    lost = enroll_service.enroll(
        runtime, [Upload("1.jpg", (dev / "george_w_bush" / "1.jpg").read_bytes())], name="Bush"
    )

    dlib = Runtime(settings.model_copy(update={"engine": DlibEngineSettings()}), engine=dlib_pool)
    dlib.open()
    try:
        assert len(dlib.index) == 0  # SFace embeddings are never loaded into a dlib index
        assert len(reindex_service.missing_embeddings(dlib)) == 3
        # One stored photo has gone missing from the blob store: it is reported, the others are re-embedded.
        [face] = dlib.store.list_faces(lost.person.id)
        key = dlib.store.get_face(lost.person.id, face.id)[1].blob_key
        dlib.blobs.delete(key)

        result = reindex_service.reindex(dlib)

        assert (result.images, result.added) == (3, 2)
        assert len(result.failed) == 1 and key in result.failed[0]
        assert len(dlib.index) == 2
        probe = (dev / "colin_powell" / "3.jpg").read_bytes()
        match = identify_service.identify(dlib, probe).faces[0].match
        assert match is not None and match.person_id == powell.person.id
        # The default engine's index and entries are untouched.
        assert len(runtime.index) == 3
    finally:
        dlib.close()
