"""services.identify: every face is written to match history, unknown faces too, all or nothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from sqlalchemy import select

from facegate.errors import InvalidInput
from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services import people as people_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.blobs import FileBlobStore
from facegate.store.models import MatchRecord
from tests.support import FailingBlobStore, blob_files, row_counts, sql


def test_each_face_is_recorded_with_its_crop(runtime: Runtime, dev: Path) -> None:
    photo = dev / "barack_obama" / "1.jpg"
    obama = enroll_service.enroll(runtime, [Upload(photo.name, photo.read_bytes())], name="Obama").person.id

    result = identify_service.identify(runtime, (dev / "multi" / "two_people.jpg").read_bytes(), source="test")

    assert len(result.faces) == 2
    with sql(runtime).db.session() as session:
        records = {r.id: r for r in session.scalars(select(MatchRecord))}
    assert set(records) == {f.match_id for f in result.faces}
    for face in result.faces:
        assert face.match_id is not None
        record = records[face.match_id]
        assert record.request_id == result.request_id
        assert record.source == "test"
        assert record.person_id == (face.match.person_id if face.match else None)
        assert (record.left, record.top, record.width, record.height) == (
            face.box.left,
            face.box.top,
            face.box.width,
            face.box.height,
        )
        assert record.crop_key is not None
        assert runtime.blobs.get(record.crop_key)[:2] == b"\xff\xd8"
    assert [r.person_id for r in records.values()].count(obama) == 1
    assert [r.person_id for r in records.values()].count(None) == 1  # Biden is not enrolled


def test_crop_write_failure_records_nothing(runtime: Runtime, dev: Path) -> None:
    runtime.blobs = FailingBlobStore(runtime.settings.blob_path, fail_on=2)

    with pytest.raises(OSError, match="injected"):
        identify_service.identify(runtime, (dev / "multi" / "two_people.jpg").read_bytes())

    assert row_counts(runtime)["matches"] == 0
    assert blob_files(runtime) == []  # the first crop was removed again


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"threshold": 0.0}, "invalid_threshold"),
        ({"threshold": 2.0}, "invalid_threshold"),
        ({"top_k": 0}, "invalid_top_k"),
        ({"top_k": 101}, "invalid_top_k"),
        ({"max_faces": 0}, "invalid_max_faces"),
    ],
)
def test_parameters_are_checked(runtime: Runtime, dev: Path, kwargs: dict[str, float], code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        identify_service.identify(runtime, (dev / "colin_powell" / "1.jpg").read_bytes(), **kwargs)  # type: ignore[arg-type]
    assert raised.value.code == code
    assert row_counts(runtime)["matches"] == 0


def test_identified_faces_are_counted(runtime: Runtime, dev: Path) -> None:
    identify_service.identify(runtime, (dev / "multi" / "two_people.jpg").read_bytes())
    assert runtime.telemetry.counter_values()["facegate_identified_faces"] == {"result=unknown": 2.0}


class DeletingBlobStore(FileBlobStore):
    """Deletes a person (as a concurrent request would) just as identify writes its first crop."""

    def __init__(self, root: Path, rt: Runtime, person_id: str) -> None:
        super().__init__(root)
        self.rt, self.person_id, self.done = rt, person_id, False

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        if key.startswith("crops/") and not self.done:
            self.done = True
            people_service.delete_person(self.rt, self.person_id)
        super().put(key, data)


def test_a_match_deleted_during_identify_is_searched_again(runtime: Runtime, dev: Path) -> None:
    photo = dev / "colin_powell" / "1.jpg"
    powell = enroll_service.enroll(runtime, [Upload(photo.name, photo.read_bytes())], name="Powell").person.id
    runtime.blobs = DeletingBlobStore(runtime.settings.blob_path, runtime, powell)

    result = identify_service.identify(runtime, (dev / "colin_powell" / "2.jpg").read_bytes())

    assert result.faces[0].match is None and result.faces[0].candidates == []
    assert row_counts(runtime) == {"people": 0, "images": 0, "faces": 0, "matches": 1}
    assert len(blob_files(runtime)) == 1  # the second attempt's crop; the first one's was removed


def test_unknown_faces_say_why(runtime: Runtime, dev: Path) -> None:
    powell = (dev / "colin_powell" / "1.jpg").read_bytes()
    [nobody] = identify_service.identify(runtime, powell).faces
    assert nobody.match is None and nobody.reason == "no_candidate" and nobody.candidates == []
    assert nobody.decided_by == "opencv"

    enroll_service.enroll(runtime, [Upload("1.jpg", (dev / "george_w_bush" / "1.jpg").read_bytes())], name="Bush")
    [stranger] = identify_service.identify(runtime, powell).faces
    assert stranger.match is None and stranger.reason == "above_threshold"
    assert stranger.candidates[0].name == "Bush" and stranger.candidates[0].distance > runtime.engine.info.threshold

    # The same face at 30% size (a 27 px box): below the enrollment minimum, so its distances mean little.
    image = cv2.imread(str(dev / "colin_powell" / "1.jpg"))
    tiny = cv2.imencode(".png", cv2.resize(image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA))[1].tobytes()
    [small] = identify_service.identify(runtime, tiny).faces
    assert small.box.width < runtime.settings.enroll.min_face_size
    assert small.match is None and small.reason == "low_quality"

    matched = identify_service.identify(runtime, (dev / "george_w_bush" / "2.jpg").read_bytes()).faces[0]
    assert matched.match is not None and matched.reason is None
