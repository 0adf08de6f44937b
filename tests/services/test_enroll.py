"""services.enroll: all or nothing. A failure part-way (blob write, commit) leaves no partial person; the index
follows the committed rows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from facegate.config import EnrollSettings
from facegate.errors import Conflict, InvalidInput, NotFound, Unprocessable
from facegate.index.base import Hit, VectorIndex, Vectors
from facegate.services import enroll as enroll_service
from facegate.services.enroll import parse_metadata
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.blobs import FileBlobStore
from facegate.vision.pool import EnginePool
from tests.support import FailingBlobStore, assert_nothing_stored, blob_files, row_counts


def _uploads(*paths: Path) -> list[Upload]:
    return [Upload(filename=p.name, data=p.read_bytes()) for p in paths]


class FailingIndex:
    """Wraps the real index; every `add` fails as an out-of-memory would."""

    stateful = True

    def __init__(self, inner: VectorIndex) -> None:
        self.inner = inner

    def add(self, face_ids: list[int], person_ids: list[str], vectors: Vectors) -> None:
        raise MemoryError("index insert failed (injected)")

    def remove(self, face_ids: list[int]) -> None:
        self.inner.remove(face_ids)

    def search(self, vector: Vectors, k: int) -> list[Hit]:
        return self.inner.search(vector, k)

    def open(self) -> None:
        self.inner.open()

    def ready(self) -> bool:
        return self.inner.ready()

    def __len__(self) -> int:
        return len(self.inner)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def powell(dev: Path) -> list[Path]:
    return [dev / "colin_powell" / f"{n}.jpg" for n in (1, 2, 3)]


def _state(rt: Runtime) -> tuple[Any, ...]:
    return row_counts(rt), blob_files(rt), len(rt.index)


def test_enroll_stores_person_faces_and_index_entries(runtime: Runtime, powell: list[Path]) -> None:
    result = enroll_service.enroll(runtime, _uploads(*powell), name=" Colin Powell ", metadata={"a": 1})
    assert result.person.name == "Colin Powell"  # trimmed
    assert result.person.face_count == 3
    assert result.person.metadata == {"a": 1}
    assert row_counts(runtime) == {"people": 1, "images": 3, "faces": 3, "matches": 0}
    assert len(blob_files(runtime)) == 3
    hits = runtime.index.search(np.zeros(128, dtype=np.float32) + 0.1, 10)
    assert {h.face_id for h in hits} == {f.id for f in result.faces}
    assert {h.person_id for h in hits} == {result.person.id}


@pytest.mark.parametrize("fail_on", [1, 2, 3])
def test_blob_write_failure_leaves_nothing_behind(runtime: Runtime, powell: list[Path], fail_on: int) -> None:
    runtime.blobs = FailingBlobStore(runtime.settings.blob_path, fail_on=fail_on)

    with pytest.raises(OSError, match="injected"):
        enroll_service.enroll(runtime, _uploads(*powell), name="Colin Powell")

    assert_nothing_stored(runtime)
    runtime.blobs = FileBlobStore(runtime.settings.blob_path)
    result = enroll_service.enroll(runtime, _uploads(*powell), name="Colin Powell")
    assert result.person.face_count == 3
    assert len(runtime.index) == 3


def test_index_failure_after_the_commit_loses_nothing(runtime: Runtime, powell: list[Path]) -> None:
    """The rows are the truth and the change log records them: an index that fails to take the new faces is
    brought level by the next sync, without a second enrollment."""
    real_index = runtime.index
    runtime.index = FailingIndex(real_index)

    result = enroll_service.enroll(runtime, _uploads(*powell), name="Colin Powell")

    assert row_counts(runtime) == {"people": 1, "images": 3, "faces": 3, "matches": 0}
    assert len(real_index) == 0
    runtime.index = real_index
    runtime.sync_index()
    assert len(runtime.index) == 3
    hits = runtime.index.search(np.zeros(128, dtype=np.float32) + 0.1, 10)
    assert {h.face_id for h in hits} == {f.id for f in result.faces}


def test_a_batch_may_leave_the_index_sync_to_its_end(runtime: Runtime, powell: list[Path]) -> None:
    """`facegate enroll` syncs the index once after every folder: each enrollment commits its rows and change
    log entries, and the one sync at the end brings the index level with all of them."""
    first = enroll_service.enroll(runtime, _uploads(*powell[:2]), name="Colin Powell", sync_index=False)
    second = enroll_service.enroll(runtime, _uploads(powell[2]), person_id=first.person.id, sync_index=False)
    assert row_counts(runtime) == {"people": 1, "images": 3, "faces": 3, "matches": 0}
    assert len(runtime.index) == 0
    runtime.sync_index_after_write()
    hits = runtime.index.search(np.zeros(128, dtype=np.float32) + 0.1, 10)
    assert {h.face_id for h in hits} == {f.id for f in first.faces + second.faces}


def test_failure_adding_faces_keeps_the_existing_person_intact(runtime: Runtime, powell: list[Path], dev: Path) -> None:
    person = enroll_service.enroll(runtime, _uploads(powell[0]), name="Colin Powell").person
    before = _state(runtime)
    runtime.blobs = FailingBlobStore(runtime.settings.blob_path, fail_on=2)

    with pytest.raises(OSError):
        enroll_service.enroll(runtime, _uploads(*powell[1:]), person_id=person.id)

    assert _state(runtime) == before
    runtime.blobs = FileBlobStore(runtime.settings.blob_path)
    again = enroll_service.enroll(runtime, _uploads(*powell[1:]), person_id=person.id)
    assert again.person.face_count == 3


def test_external_id_in_use(runtime: Runtime, powell: list[Path]) -> None:
    enroll_service.enroll(runtime, _uploads(powell[0]), name="A", external_id="e-1")
    with pytest.raises(Conflict) as raised:
        enroll_service.enroll(runtime, _uploads(powell[1]), name="B", external_id="e-1")
    assert raised.value.code == "external_id_taken"


def test_unknown_person(runtime: Runtime, powell: list[Path]) -> None:
    with pytest.raises(NotFound) as raised:
        enroll_service.enroll(runtime, _uploads(powell[0]), person_id="nobody")
    assert raised.value.code == "person_not_found"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({}, "name_or_person_id"),
        ({"name": "a", "person_id": "b"}, "name_or_person_id"),
        ({"name": ""}, "invalid_name"),
    ],
)
def test_name_or_person_id_rules(runtime: Runtime, powell: list[Path], kwargs: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        enroll_service.enroll(runtime, _uploads(powell[0]), **kwargs)
    assert raised.value.code == code


def test_no_uploads(runtime: Runtime) -> None:
    with pytest.raises(InvalidInput) as raised:
        enroll_service.enroll(runtime, [], name="x")
    assert raised.value.code == "missing_image"


def test_all_rejected_raises_the_most_specific_reason(runtime: Runtime, dev: Path) -> None:
    with pytest.raises(Unprocessable) as raised:
        enroll_service.enroll(runtime, _uploads(dev / "noface" / "banana.jpg", dev / "multi" / "couple.jpg"), name="x")
    assert raised.value.code == "multiple_faces"
    assert_nothing_stored(runtime)


def test_enrolled_faces_are_counted_in_telemetry(runtime: Runtime, powell: list[Path], dev: Path) -> None:
    enroll_service.enroll(runtime, _uploads(powell[0], dev / "noface" / "banana.jpg"), name="x")
    counters = runtime.telemetry.counter_values()
    assert counters["facegate_enrolled_faces"] == {"all": 1.0}
    assert counters["facegate_rejected_images"] == {"reason=no_face": 1.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, {}), ("", {}), ("  ", {}), ("{}", {}), ('{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]})],
)
def test_parse_metadata(text: str | None, expected: dict[str, Any]) -> None:
    assert parse_metadata(text) == expected


@pytest.mark.parametrize("text", ["{", "[1]", '"text"', "3", "null"])
def test_parse_metadata_refuses_anything_but_an_object(text: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_metadata(text)
    assert raised.value.code == "invalid_metadata"


def test_a_face_cut_by_the_edge_never_dominates(opencv_pool: EnginePool, dev: Path) -> None:
    # In this selfie the largest box is a face cut off at the photo's corner, far from its centre: enrolling
    # it would store a bystander, so the photo is refused as ambiguous instead (see also test_pick_face.py).
    analysis = opencv_pool.analyze(
        (dev / "multi" / "selfie-many-people.jpg").read_bytes(), max_pixels=40_000_000, max_faces=1, crops=False
    )
    largest = analysis.boxes[0]
    assert largest.left <= 0 or largest.top <= 0 or largest.left + largest.width >= analysis.width
    assert enroll_service.pick_face(analysis, EnrollSettings(dominant_ratio=1.0)) == (None, "multiple_faces")


def test_a_clear_subject_dominates_bystanders(opencv_pool: EnginePool, dev: Path) -> None:
    # LFW crop with smaller faces in the background (README caveat): the central face is enrolled.
    analysis = opencv_pool.analyze(
        (dev / "ariel_sharon" / "4.jpg").read_bytes(), max_pixels=40_000_000, max_faces=1, crops=False
    )
    assert len(analysis.boxes) > 1
    face, reason = enroll_service.pick_face(analysis, EnrollSettings())
    assert reason is None and face is not None and face.box == analysis.boxes[0]


def test_a_photo_too_large_to_decode_is_rejected_alone(runtime: Runtime, dev: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 5000)).save(buffer, "PNG")  # 25 MP: under the header limit, over the decode limit
    big = Upload("big.png", buffer.getvalue())
    good = Upload("1.jpg", (dev / "colin_powell" / "1.jpg").read_bytes())
    result = enroll_service.enroll(runtime, [big, good], name="Powell")
    assert [f.filename for f in result.faces] == ["1.jpg"]
    assert [(r.filename, r.reason) for r in result.rejected] == [("big.png", "image_too_large")]
