"""The fused engine end to end on real photos: both descriptors stored, the second one computed only when
SFace is unsure, candidates rescored with both, and explained answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facegate.config import FusionEngineSettings, OpenCVEngineSettings, Settings
from facegate.services import compare as compare_service
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import reindex as reindex_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.vision.engine import distance
from facegate.vision.pool import EnginePool


@pytest.fixture
def fused(settings: Settings, fusion_pool: EnginePool) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update={"engine": FusionEngineSettings()}), engine=fusion_pool)
    rt.open()
    yield rt
    rt.close()


def _upload(path: Path) -> Upload:
    return Upload(path.name, path.read_bytes())


def _unsure_threshold(rt: Runtime, primary: float) -> float:
    """A threshold that puts `primary` in the middle of the (shifted) band: that face is fused."""
    rule = rt.engine.info.fusion
    assert rule is not None
    return rule.threshold + primary - (rule.band_low + rule.band_high) / 2


def test_enrollment_stores_both_descriptors_of_each_photo(fused: Runtime, dev: Path) -> None:
    photos = [dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg"]
    result = enroll_service.enroll(fused, [_upload(p) for p in photos], name="Powell")
    assert len(result.faces) == 2  # one per photo in the answer
    rows = fused.store.list_faces(result.person.id)
    assert sorted(r.engine for r in rows) == ["dlib", "dlib", "opencv", "opencv"]
    assert len({r.image_id for r in rows}) == 2
    assert len(fused.index) == 2  # only SFace embeddings are indexed


def test_a_face_sface_is_sure_of_costs_sface_alone(fused: Runtime, dev: Path) -> None:
    enroll_service.enroll(fused, [_upload(dev / "colin_powell" / "1.jpg")], name="Powell")
    face = identify_service.identify(fused, (dev / "colin_powell" / "2.jpg").read_bytes()).faces[0]
    rule = fused.engine.info.fusion
    assert rule is not None and face.match is not None
    assert face.match.distance < rule.band_low  # far inside the threshold: no second look
    assert face.decided_by == "opencv"


def test_an_unsure_face_is_rescored_with_both_descriptors(fused: Runtime, dev: Path) -> None:
    gallery, probe = dev / "colin_powell" / "1.jpg", dev / "colin_powell" / "2.jpg"
    powell = enroll_service.enroll(fused, [_upload(gallery)], name="Powell").person.id
    enroll_service.enroll(fused, [_upload(dev / "george_w_bush" / "1.jpg")], name="Bush")
    limit = fused.settings.limits.max_image_pixels
    a, b = (
        fused.engine.analyze(p.read_bytes(), max_pixels=limit, max_faces=1, crops=False, secondary="embed")
        for p in (gallery, probe)
    )
    primary = distance("cosine", a.faces[0].embedding, b.faces[0].embedding)
    second = distance("euclidean", a.faces[0].secondary, b.faces[0].secondary)  # type: ignore[arg-type]
    rule = fused.engine.info.fusion
    assert rule is not None

    threshold = _unsure_threshold(fused, primary)
    face = identify_service.identify(fused, probe.read_bytes(), threshold=threshold).faces[0]

    assert face.decided_by == "fusion"
    assert face.candidates[0].person_id == powell
    assert face.candidates[0].distance == pytest.approx(rule.fused(primary, second), abs=1e-3)
    assert face.candidates[0].distance != pytest.approx(primary, abs=1e-3)


def test_faces_enrolled_before_fusion_get_their_second_descriptor_from_reindex(
    settings: Settings, fused: Runtime, opencv_pool: EnginePool, dev: Path
) -> None:
    plain = Runtime(settings.model_copy(update={"engine": OpenCVEngineSettings()}), engine=opencv_pool)
    plain.open()
    try:
        person = enroll_service.enroll(plain, [_upload(dev / "colin_powell" / "1.jpg")], name="Powell").person.id
    finally:
        plain.close()
    fused.sync_index()  # another process enrolled: the change log brings the face in
    probe = (dev / "colin_powell" / "2.jpg").read_bytes()
    sure = identify_service.identify(fused, probe).faces[0]
    assert sure.match is not None and sure.match.person_id == person  # same SFace space: found at once
    threshold = _unsure_threshold(fused, sure.match.distance)

    before = identify_service.identify(fused, probe, threshold=threshold).faces[0]
    # No second descriptor stored for this face yet: its primary distance stands.
    assert before.candidates[0].distance == pytest.approx(sure.match.distance, abs=1e-4)

    assert list(reindex_service.missing_embeddings(fused).values()) == [{("dlib", "resnet-v1+5pt-chip150")}]
    result = reindex_service.reindex(fused)
    assert (result.images, result.added, result.failed) == (1, 1, [])
    assert sorted(r.engine for r in fused.store.list_faces(person)) == ["dlib", "opencv"]

    after = identify_service.identify(fused, probe, threshold=threshold).faces[0]
    assert after.decided_by == "fusion"
    assert after.candidates[0].distance != pytest.approx(sure.match.distance, abs=1e-3)


def test_compare_says_which_score_decided(fused: Runtime, dev: Path) -> None:
    a, b = (dev / "colin_powell" / "1.jpg").read_bytes(), (dev / "colin_powell" / "2.jpg").read_bytes()
    sure = compare_service.compare(fused, a, b)
    assert sure.same and sure.decided_by == "opencv"
    unsure = compare_service.compare(fused, a, b, threshold=_unsure_threshold(fused, sure.distance))
    assert unsure.decided_by == "fusion"
    assert unsure.distance != pytest.approx(sure.distance, abs=1e-3)
    stranger = compare_service.compare(fused, a, (dev / "george_w_bush" / "1.jpg").read_bytes())
    assert not stranger.same
