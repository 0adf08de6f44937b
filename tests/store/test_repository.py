"""store.repository: the Repository protocol as services use it, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import Connection, insert, text

from facegate.errors import Conflict, NotFound
from facegate.store.base import (
    MatchFilter,
    NewFace,
    NewImage,
    NewMatch,
    PersonCreate,
    PersonRow,
    Removed,
    StoredCandidate,
)
from facegate.store.models import FaceRecord
from facegate.store.repository import CHUNK, SQLRepository

DIM = 128
OPENCV = ("opencv", "sface-test")
DLIB = ("dlib", "resnet-test")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
OpenRepo = Callable[..., SQLRepository]
LATER = timedelta(minutes=1)

_rng = np.random.default_rng(7)


def vector() -> bytes:
    return _rng.standard_normal(DIM).astype("<f4").tobytes()


def new_face(engine: tuple[str, str] = OPENCV, embedding: bytes | None = None) -> NewFace:
    return NewFace(
        left=10,
        top=20,
        width=30,
        height=40,
        quality=0.9,
        detector_score=0.95,
        sharpness=120.0,
        engine=engine[0],
        model_version=engine[1],
        embedding=embedding if embedding is not None else vector(),
    )


def new_image(*faces: NewFace, sha256: str | None = None) -> NewImage:
    image_id = str(uuid.uuid4())
    return NewImage(
        id=image_id,
        blob_key=f"images/{image_id}.jpg",
        sha256=sha256 or uuid.uuid4().hex * 2,
        filename="photo.jpg",
        width=640,
        height=480,
        faces=list(faces) or [new_face()],
    )


def enroll(
    repo: SQLRepository,
    name: str = "Ann",
    *,
    photos: int = 1,
    external_id: str | None = None,
    metadata: dict[str, object] | None = None,
) -> PersonRow:
    person = PersonCreate(name, external_id=external_id, metadata=dict(metadata or {}))
    row, _ = repo.save_enrollment(person, [new_image() for _ in range(photos)])
    return row


def new_match(
    person_id: str | None,
    created_at: datetime = T0,
    *,
    crop_key: str | None = None,
    candidates: list[StoredCandidate] | None = None,
) -> NewMatch:
    return NewMatch(
        request_id=str(uuid.uuid4()),
        source="api",
        created_at=created_at,
        person_id=person_id,
        distance=0.2 if person_id else None,
        confidence=0.8 if person_id else None,
        threshold=0.4,
        left=1,
        top=2,
        width=3,
        height=4,
        quality=0.7,
        engine=OPENCV[0],
        model_version=OPENCV[1],
        candidates=candidates or [],
        crop_key=crop_key,
    )


def ops(repo: SQLRepository, since: int = 0) -> list[tuple[str, int]]:
    changes = repo.changes_since(since)
    assert changes is not None
    return [(c.op, c.face_id) for c in changes]


def far_future() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


# People ------------------------------------------------------------------------------------------------------


def test_save_enrollment_of_a_new_person(repo: SQLRepository) -> None:
    images = [new_image(), new_image()]
    repo.begin_blob_writes([i.blob_key for i in images])
    person, faces = repo.save_enrollment(PersonCreate("Ann", external_id="E1", metadata={"team": "red"}), images)

    assert (person.name, person.external_id, person.metadata, person.face_count) == ("Ann", "E1", {"team": "red"}, 2)
    assert uuid.UUID(person.id)
    assert person.created_at.utcoffset() == timedelta(0)
    assert abs(person.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert repo.get_person(person.id) == person
    assert [f.image_id for f in faces] == [i.id for i in images]
    assert all(f.person_id == person.id and (f.left, f.top, f.width, f.height) == (10, 20, 30, 40) for f in faces)
    assert faces[0].id < faces[1].id
    assert repo.image_exists(person.id, images[0].sha256)
    assert not repo.image_exists(person.id, "0" * 64)
    assert repo.pending_blobs(far_future()) == []  # the enrollment cleared its images' pending writes
    assert repo.get_person(str(uuid.uuid4())) is None


def test_save_enrollment_onto_an_existing_person(repo: SQLRepository) -> None:
    person = enroll(repo)
    # One photo, two engines: both embeddings describe the same face, which counts once.
    again, faces = repo.save_enrollment(person.id, [new_image(new_face(OPENCV), new_face(DLIB))])
    assert again.id == person.id
    assert again.face_count == 2
    assert again.updated_at > person.updated_at
    assert again.created_at == person.created_at
    assert [(f.engine, f.person_id) for f in faces] == [("opencv", person.id), ("dlib", person.id)]
    assert len(repo.list_faces(person.id)) == 3


def test_list_people_pages_oldest_first_with_the_total(repo: SQLRepository) -> None:
    people = [enroll(repo, f"P{i}", photos=i % 3) for i in range(5)]
    page, total = repo.list_people(limit=2, offset=0, name=None)
    assert total == 5
    assert [p.id for p in page] == [people[0].id, people[1].id]
    page, total = repo.list_people(limit=2, offset=4, name=None)
    assert ([p.id for p in page], total) == ([people[4].id], 5)
    assert [p.face_count for p in repo.list_people(limit=10, offset=0, name=None)[0]] == [0, 1, 2, 0, 1]
    assert repo.list_people(limit=10, offset=10, name=None) == ([], 5)


def test_name_filter_is_a_case_insensitive_literal_substring(repo: SQLRepository) -> None:
    for name in ("Ann Smith", "anna", "100% sure", "100 percent", "a_b", "axb", r"back\slash", "backslash"):
        enroll(repo, name)

    def names(query: str) -> list[str]:
        page, total = repo.list_people(limit=50, offset=0, name=query)
        assert total == len(page)
        return sorted(p.name for p in page)

    assert names("ANN") == ["Ann Smith", "anna"]
    assert names("%") == ["100% sure"]
    assert names("0%") == ["100% sure"]
    assert names("_") == ["a_b"]
    assert names("a_b") == ["a_b"]
    assert names("\\") == [r"back\slash"]
    assert names("nobody") == []
    assert len(names("")) == 8  # an empty filter is no filter


def test_find_people_by_name_and_external_id(repo: SQLRepository) -> None:
    first = enroll(repo, "Sam", external_id="S-1")
    second = enroll(repo, "Sam")
    assert second.created_at >= first.created_at
    found = repo.find_person_by_name("Sam")
    assert found is not None and found.id == first.id
    assert repo.find_person_by_name("sam") is None  # exact name, not the list filter
    by_external = repo.find_person_by_external_id("S-1")
    assert by_external is not None and by_external.id == first.id and by_external.face_count == 1
    assert repo.find_person_by_external_id("S-2") is None


def test_names_of_skips_missing_ids(repo: SQLRepository) -> None:
    ann, bob = enroll(repo, "Ann"), enroll(repo, "Bob")
    unknown = [str(uuid.uuid4()) for _ in range(CHUNK + 100)]  # several IN (...) chunks
    assert repo.names_of([ann.id, *unknown, bob.id, ann.id]) == {ann.id: "Ann", bob.id: "Bob"}
    assert repo.names_of([]) == {}


def test_update_person(repo: SQLRepository) -> None:
    ann = enroll(repo, "Ann", external_id="A", metadata={"team": "red", "desk": 4})
    enroll(repo, "Bob", external_id="B")

    updated = repo.update_person(ann.id, {"name": "Anne", "metadata": {"team": "blue"}})
    assert (updated.name, updated.external_id, updated.metadata) == ("Anne", "A", {"team": "blue"})  # replaced
    assert updated.updated_at > ann.updated_at
    assert updated.created_at == ann.created_at
    assert updated.face_count == 1
    assert repo.get_person(ann.id) == updated

    with pytest.raises(Conflict) as info:
        repo.update_person(ann.id, {"name": "Clash", "external_id": "B"})
    assert info.value.code == "external_id_taken"
    assert repo.get_person(ann.id) == updated  # nothing of the failed update was kept

    cleared = repo.update_person(ann.id, {"external_id": None})
    assert cleared.external_id is None and cleared.name == "Anne"
    assert repo.update_person(ann.id, {"external_id": "B2"}).external_id == "B2"

    with pytest.raises(NotFound) as missing:
        repo.update_person(str(uuid.uuid4()), {"name": "x"})
    assert missing.value.code == "person_not_found"


def test_delete_person_returns_faces_and_blobs_and_keeps_other_history(repo: SQLRepository) -> None:
    ann_images = [new_image(new_face(OPENCV), new_face(DLIB)), new_image()]
    ann, ann_faces = repo.save_enrollment(PersonCreate("Ann"), ann_images)
    bob, bob_faces = repo.save_enrollment(PersonCreate("Bob"), [new_image()])
    as_candidate = [StoredCandidate(ann.id, 0.3), StoredCandidate(bob.id, 0.5)]
    ann_match, bob_match, unknown_match, no_crop = repo.add_matches(
        [
            new_match(ann.id, crop_key="crops/ann.jpg"),
            new_match(bob.id, crop_key="crops/bob.jpg", candidates=as_candidate),
            new_match(None, crop_key="crops/unknown.jpg", candidates=as_candidate),
            new_match(ann.id),
        ]
    )
    before = repo.last_change()

    removed = repo.delete_person(ann.id)

    assert sorted(removed.face_ids) == sorted(f.id for f in ann_faces)
    assert sorted(removed.blob_keys) == sorted([*(i.blob_key for i in ann_images), "crops/ann.jpg"])
    assert set(removed.blob_keys) <= set(repo.pending_blobs(far_future()))
    assert repo.referenced_blobs(removed.blob_keys) == set()
    assert repo.get_person(ann.id) is None
    assert repo.get_match(ann_match) is None and repo.get_match(no_crop) is None
    assert sorted(ops(repo, before)) == sorted(("remove", f.id) for f in ann_faces)
    assert repo.counts() == {"people": 1, "faces": 1, "images": 1, "matches": 2, "unknown_matches": 1}
    assert [f.id for f in repo.list_faces(bob.id)] == [bob_faces[0].id]
    # Other people's history still names the deleted person as a candidate: no scan rewrote it, and it loads.
    for match_id in (bob_match, unknown_match):
        kept = repo.get_match(match_id)
        assert kept is not None and kept.candidates == as_candidate
    listed, total = repo.list_matches(MatchFilter(), limit=10, offset=0)
    assert total == 2 and {m.id for m in listed} == {bob_match, unknown_match}
    assert repo.names_of([c.person_id for c in as_candidate]) == {bob.id: "Bob"}

    with pytest.raises(NotFound) as again:
        repo.delete_person(ann.id)
    assert again.value.code == "person_not_found"


# Enrollment errors -----------------------------------------------------------------------------------------


def _assert_nothing_changed(repo: SQLRepository, counts: dict[str, int], last_change: int) -> None:
    assert repo.counts() == counts
    assert repo.last_change() == last_change


def test_duplicate_photo_of_the_same_person_is_a_conflict(repo: SQLRepository) -> None:
    ann, _ = repo.save_enrollment(PersonCreate("Ann"), [new_image(sha256="a" * 64)])
    counts, last = repo.counts(), repo.last_change()
    retry = [new_image(), new_image(sha256="a" * 64)]
    repo.begin_blob_writes([i.blob_key for i in retry])

    with pytest.raises(Conflict) as info:
        repo.save_enrollment(ann.id, retry)
    assert info.value.code == "duplicate_image"
    _assert_nothing_changed(repo, counts, last)
    assert not repo.image_exists(ann.id, retry[0].sha256)  # the good photo of the batch was rolled back too
    assert sorted(repo.pending_blobs(far_future())) == sorted(i.blob_key for i in retry)  # still to settle

    # The same photo twice in one new enrollment: no person is left behind.
    with pytest.raises(Conflict) as twice:
        repo.save_enrollment(PersonCreate("Bob"), [new_image(sha256="b" * 64), new_image(sha256="b" * 64)])
    assert twice.value.code == "duplicate_image"
    _assert_nothing_changed(repo, counts, last)
    assert repo.find_person_by_name("Bob") is None

    # The same photo for another person is fine.
    bob, _ = repo.save_enrollment(PersonCreate("Bob"), [new_image(sha256="a" * 64)])
    assert bob.face_count == 1


def test_enrolling_onto_an_unknown_person_is_not_found(repo: SQLRepository) -> None:
    enroll(repo)
    counts, last = repo.counts(), repo.last_change()
    with pytest.raises(NotFound) as info:
        repo.save_enrollment(str(uuid.uuid4()), [new_image()])
    assert info.value.code == "person_not_found"
    _assert_nothing_changed(repo, counts, last)


def test_taken_external_id_is_a_conflict(repo: SQLRepository) -> None:
    enroll(repo, "Ann", external_id="E1")
    counts, last = repo.counts(), repo.last_change()
    with pytest.raises(Conflict) as info:
        repo.save_enrollment(PersonCreate("Other", external_id="E1"), [new_image(), new_image()])
    assert info.value.code == "external_id_taken"
    _assert_nothing_changed(repo, counts, last)
    assert repo.find_person_by_name("Other") is None


# Faces -------------------------------------------------------------------------------------------------------


def test_list_and_get_faces(repo: SQLRepository) -> None:
    images = [new_image(), new_image()]
    ann, faces = repo.save_enrollment(PersonCreate("Ann"), images)
    bob, bob_faces = repo.save_enrollment(PersonCreate("Bob"), [new_image()])

    assert repo.list_faces(ann.id) == faces
    assert repo.list_faces(enroll(repo, "Nobody", photos=0).id) == []
    face, image = repo.get_face(ann.id, faces[1].id)
    assert face == faces[1]
    assert (image.id, image.person_id, image.blob_key, image.sha256) == (
        images[1].id,
        ann.id,
        images[1].blob_key,
        images[1].sha256,
    )
    assert (image.filename, image.width, image.height) == ("photo.jpg", 640, 480)
    assert repo.get_image(images[0].id) is not None and repo.get_image("nope") is None

    wrong_face: list[Callable[[], object]] = [
        lambda: repo.get_face(ann.id, bob_faces[0].id),  # another person's face
        lambda: repo.get_face(ann.id, 10**9),
        lambda: repo.delete_face(ann.id, bob_faces[0].id),
    ]
    for call in wrong_face:
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.code == "face_not_found"
    wrong_person: list[Callable[[], object]] = [
        lambda: repo.list_faces("nope"),
        lambda: repo.get_face("nope", faces[0].id),
        lambda: repo.delete_face("nope", faces[0].id),
    ]
    for call in wrong_person:
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.code == "person_not_found"
    assert repo.list_faces(bob.id) == bob_faces  # untouched by the refused delete


def test_delete_face_takes_its_photo_and_sibling_embeddings(repo: SQLRepository) -> None:
    shared = new_image(new_face(OPENCV), new_face(DLIB))
    other = new_image()
    ann, (opencv_face, dlib_face, kept) = repo.save_enrollment(PersonCreate("Ann"), [shared, other])
    before = repo.last_change()

    removed = repo.delete_face(ann.id, opencv_face.id)

    assert sorted(removed.face_ids) == [opencv_face.id, dlib_face.id]
    assert removed.blob_keys == [shared.blob_key]
    assert repo.pending_blobs(far_future()) == [shared.blob_key]
    assert repo.referenced_blobs([shared.blob_key, other.blob_key]) == {other.blob_key}
    assert repo.get_image(shared.id) is None
    assert repo.list_faces(ann.id) == [kept]
    assert sorted(ops(repo, before)) == [("remove", opencv_face.id), ("remove", dlib_face.id)]
    person = repo.get_person(ann.id)
    assert person is not None and person.face_count == 1 and person.updated_at > ann.updated_at
    with pytest.raises(NotFound) as info:
        repo.delete_face(ann.id, dlib_face.id)
    assert info.value.code == "face_not_found"


# Embeddings --------------------------------------------------------------------------------------------------


def test_embeddings_round_trip_exactly(repo: SQLRepository) -> None:
    awkward = np.array([0.1, -0.0, 1e-30, -3.4e38, 1 / 3, 123456.79] * 21 + [2.5, -2.5], dtype="<f4").tobytes()
    vectors = [awkward, *(vector() for _ in range(3))]
    ann, faces = repo.save_enrollment(PersonCreate("Ann"), [new_image(new_face(embedding=v)) for v in vectors])
    repo.save_enrollment(ann.id, [new_image(new_face(DLIB))])

    got = list(repo.iter_embeddings(*OPENCV))
    assert [(e.face_id, e.person_id) for e in got] == [(f.id, ann.id) for f in faces]
    assert [e.vector for e in got] == vectors  # byte for byte, whatever the backend stores
    assert [len(e.vector) for e in repo.iter_embeddings(*DLIB)] == [DIM * 4]
    assert list(repo.iter_embeddings("opencv", "another-version")) == []

    if repo.db.dialect == "postgresql":  # stored as pgvector values, searchable in place
        with repo.db.engine.connect() as conn:
            kinds = conn.execute(text("SELECT DISTINCT pg_typeof(embedding)::text, vector_dims(embedding) FROM faces"))
            assert kinds.all() == [("vector", DIM)]


def test_iter_embeddings_of_many_ids(repo: SQLRepository) -> None:
    count = CHUNK + 120
    engine = ("bulk", "v1")  # no HNSW index to maintain for this engine: quicker to fill
    sent = [new_face(engine) for _ in range(count)]
    _, faces = repo.save_enrollment(PersonCreate("Ann"), [new_image(*sent)])
    vectors = {f.id: s.embedding for f, s in zip(faces, sent, strict=True)}
    wanted = {f.id for f in faces[::2]} | {f.id for f in faces[-5:]} | {10**9}  # more than one chunk of ids
    got = list(repo.iter_embeddings(*engine, ids=wanted))
    assert [(e.face_id, e.vector) for e in got] == [(i, vectors[i]) for i in sorted(wanted & vectors.keys())]
    assert len(list(repo.iter_embeddings(*engine))) == count
    assert list(repo.iter_embeddings(*engine, ids=[])) == []


def test_re_embedding_adds_faces_to_existing_photos(repo: SQLRepository) -> None:
    first, second = new_image(), new_image()
    ann, _ = repo.save_enrollment(PersonCreate("Ann"), [first, second])
    assert repo.images_missing_embedding(*DLIB) == sorted([first.id, second.id])
    assert repo.images_missing_embedding(*OPENCV) == []
    before = repo.last_change()

    added = repo.add_faces([(first.id, new_face(DLIB)), (str(uuid.uuid4()), new_face(DLIB))])  # 2nd: deleted

    assert [(f.image_id, f.person_id, f.engine) for f in added] == [(first.id, ann.id, "dlib")]
    assert repo.images_missing_embedding(*DLIB) == [second.id]
    assert ops(repo, before) == [("add", added[0].id)]
    assert repo.add_faces([]) == []


# Change log --------------------------------------------------------------------------------------------------


def test_change_log_follows_every_face_change_in_order(repo: SQLRepository) -> None:
    assert repo.last_change() == 0
    assert repo.changes_since(0) == []

    ann, faces = repo.save_enrollment(PersonCreate("Ann"), [new_image(), new_image()])
    after_enroll = repo.last_change()
    image = repo.get_face(ann.id, faces[0].id)[1]
    (dlib_face,) = repo.add_faces([(image.id, new_face(DLIB))])
    repo.delete_face(ann.id, faces[0].id)
    bob, bob_faces = repo.save_enrollment(PersonCreate("Bob"), [new_image()])
    repo.delete_person(ann.id)

    changes = repo.changes_since(0)
    assert changes is not None
    assert [c.seq for c in changes] == sorted({c.seq for c in changes})
    assert changes[-1].seq == repo.last_change()
    assert [(c.op, c.face_id) for c in changes[:3]] == [
        ("add", faces[0].id),
        ("add", faces[1].id),
        ("add", dlib_face.id),
    ]
    assert sorted((c.op, c.face_id) for c in changes[3:5]) == [("remove", faces[0].id), ("remove", dlib_face.id)]
    assert [(c.op, c.face_id) for c in changes[5:]] == [("add", bob_faces[0].id), ("remove", faces[1].id)]
    assert {(c.face_id, c.person_id, c.engine, c.model_version) for c in changes if c.face_id == dlib_face.id} == {
        (dlib_face.id, ann.id, *DLIB)
    }
    assert repo.changes_since(after_enroll) == changes[2:]
    assert repo.changes_since(0, limit=2) == changes[:2]
    assert repo.changes_since(repo.last_change()) == []
    assert bob.id != ann.id


def test_trim_changes_keeps_the_newest_entry(repo: SQLRepository) -> None:
    assert repo.trim_changes(far_future()) == 0  # empty log
    enroll(repo, photos=1)
    assert repo.trim_changes(far_future()) == 0  # a lone entry is the newest one
    enroll(repo, photos=3)
    newest = repo.last_change()
    assert repo.trim_changes(datetime.now(UTC) - timedelta(hours=1)) == 0  # nothing old enough

    assert repo.trim_changes(far_future()) == 3
    assert repo.last_change() == newest
    assert repo.changes_since(0) is None  # entries after 0 are gone: the reader must reload
    assert repo.changes_since(newest - 2) is None
    tail = repo.changes_since(newest - 1)
    assert tail is not None and [c.seq for c in tail] == [newest]
    assert repo.changes_since(newest) == []

    enroll(repo, photos=1)
    assert [c.seq for c in repo.changes_since(newest) or []] == [newest + 1]
    assert repo.changes_since(0) is None


def test_concurrent_writers_never_make_a_reader_skip_an_entry(pg_url: str, open_repo: OpenRepo) -> None:
    """Replicas follow the log with a cursor: an entry must never commit below a cursor already passed."""
    repo = open_repo(pg_url)
    writers, rounds = 8, 12
    seen: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(rounds):
                repo.save_enrollment(PersonCreate("W"), [new_image(), new_image()])
        except BaseException as exc:  # reported below; a thread must not die silently
            errors.append(exc)

    def read() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                changes = repo.changes_since(cursor)
                assert changes is not None
                seen.extend(c.seq for c in changes)
                if changes:
                    cursor = changes[-1].seq
                elif finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    threads = [threading.Thread(target=write) for _ in range(writers)]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()

    assert errors == []
    full = repo.changes_since(0)
    assert full is not None and len(full) == writers * rounds * 2
    assert seen == [c.seq for c in full]  # every entry, once, in order: none skipped


def test_change_log_replays_to_the_faces_table_under_concurrent_writes(pg_url: str, open_repo: OpenRepo) -> None:
    """Enrollments, re-embeddings and deletes of faces and people racing on the same people: each call succeeds
    or fails with a facegate error, and replaying the log gives exactly the faces stored (no phantom face left
    in a replica's index, none missing)."""
    repo = open_repo(pg_url)
    people = [repo.save_enrollment(PersonCreate(f"P{i}"), [new_image(), new_image()])[0].id for i in range(10)]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(25):
            person_id = people[int(rng.integers(len(people)))]
            roll = rng.random()
            try:
                if roll < 0.4:
                    images = {f.image_id for f in repo.list_faces(person_id)}
                    repo.add_faces([(image_id, new_face(DLIB)) for image_id in sorted(images)])
                elif roll < 0.7:
                    faces = repo.list_faces(person_id)
                    if faces:
                        repo.delete_face(person_id, faces[int(rng.integers(len(faces)))].id)
                elif roll < 0.8:
                    repo.delete_person(person_id)
                else:
                    repo.save_enrollment(person_id, [new_image()])
            except (NotFound, Conflict):
                pass  # the person or face went meanwhile: a normal answer
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    live: set[int] = set()
    for change in repo.changes_since(0) or []:
        (live.add if change.op == "add" else live.discard)(change.face_id)
    stored = {e.face_id for engine in (OPENCV, DLIB) for e in repo.iter_embeddings(*engine)}
    assert live == stored


# Matches -----------------------------------------------------------------------------------------------------


def test_add_and_get_matches(repo: SQLRepository) -> None:
    ann = enroll(repo)
    written = new_match(
        ann.id,
        datetime(2024, 5, 6, 14, 0, 0, 123456, tzinfo=UTC),
        crop_key="crops/1.jpg",
        candidates=[StoredCandidate(ann.id, 0.25), StoredCandidate("gone", 0.5)],
    )
    unknown = new_match(None, crop_key="crops/2.jpg")
    repo.begin_blob_writes(["crops/1.jpg", "crops/2.jpg", "crops/other.jpg"])

    first, second = repo.add_matches([written, unknown])

    assert second > first
    assert repo.pending_blobs(far_future()) == ["crops/other.jpg"]
    stored = repo.get_match(first)
    assert stored is not None
    assert stored.id == first
    assert stored.created_at.utcoffset() == timedelta(0)
    for name in NewMatch.__dataclass_fields__:
        assert getattr(stored, name) == getattr(written, name), name
    assert repo.get_match(10**9) is None
    assert repo.add_matches([]) == []


def test_matching_a_deleted_person_stores_nothing(repo: SQLRepository) -> None:
    ann = enroll(repo)
    repo.begin_blob_writes(["crops/1.jpg", "crops/2.jpg"])
    with pytest.raises(NotFound) as info:
        repo.add_matches(
            [new_match(ann.id, crop_key="crops/1.jpg"), new_match(str(uuid.uuid4()), crop_key="crops/2.jpg")]
        )
    assert info.value.code == "person_not_found"
    assert repo.counts()["matches"] == 0
    assert sorted(repo.pending_blobs(far_future())) == ["crops/1.jpg", "crops/2.jpg"]


def test_list_matches_filters_newest_first(repo: SQLRepository) -> None:
    ann, bob = enroll(repo, "Ann"), enroll(repo, "Bob")
    owners = [ann.id, None, bob.id, ann.id, None]
    ids = repo.add_matches([new_match(p, T0 + i * LATER) for i, p in enumerate(owners)])

    def listed(query: MatchFilter, limit: int = 10, offset: int = 0) -> tuple[list[int], int]:
        rows, total = repo.list_matches(query, limit=limit, offset=offset)
        return [r.id for r in rows], total

    assert listed(MatchFilter()) == (ids[::-1], 5)
    assert listed(MatchFilter(), limit=2, offset=1) == ([ids[3], ids[2]], 5)
    assert listed(MatchFilter(person_id=ann.id)) == ([ids[3], ids[0]], 2)
    assert listed(MatchFilter(unknown_only=True)) == ([ids[4], ids[1]], 2)
    assert listed(MatchFilter(since=T0 + LATER, until=T0 + 3 * LATER)) == ([ids[2], ids[1]], 2)  # [since, until)
    # A bound in another zone means the same instant.
    east = T0.astimezone(timezone(timedelta(hours=2)))
    assert listed(MatchFilter(since=east + 4 * LATER)) == ([ids[4]], 1)
    assert listed(MatchFilter(person_id=bob.id, unknown_only=True)) == ([], 0)
    assert repo.counts()["unknown_matches"] == 2


def test_label_match(repo: SQLRepository) -> None:
    ann = enroll(repo)
    (match_id,) = repo.add_matches([new_match(None, crop_key="crops/u.jpg")])
    assert repo.label_match(match_id, ann.id) is True
    labelled = repo.get_match(match_id)
    assert labelled is not None and labelled.person_id == ann.id
    assert repo.list_matches(MatchFilter(unknown_only=True), limit=10, offset=0) == ([], 0)
    assert repo.label_match(10**9, ann.id) is False
    with pytest.raises(NotFound) as info:  # the person was deleted meanwhile
        repo.label_match(match_id, str(uuid.uuid4()))
    assert info.value.code == "person_not_found"
    kept = repo.get_match(match_id)
    assert kept is not None and kept.person_id == ann.id


def test_replace_match_keeps_a_ruling_made_on_the_row(repo: SQLRepository) -> None:
    """A video track's row is rewritten at `left`: the snapshot follows, but a person named on the row from
    history, or a "not this person" rejection, made while the track was in view, stands."""
    ann, bob = enroll(repo, "Ann"), enroll(repo, "Bob")
    # Unrequested changes: the writer recorded an unknown, then a vote named Ann: the row follows.
    (match_id,) = repo.add_matches([new_match(None, crop_key="crops/v1.jpg")])
    old = repo.replace_match(match_id, new_match(ann.id, crop_key="crops/v2.jpg"), recorded_person_id=None)
    row = repo.get_match(match_id)
    assert old == "crops/v1.jpg" and row is not None and (row.person_id, row.crop_key) == (ann.id, "crops/v2.jpg")

    # A user names the row Bob (enrolled from history); the writer, which recorded Ann, still says Ann.
    assert repo.label_match(match_id, bob.id)
    repo.replace_match(match_id, new_match(ann.id, crop_key="crops/v3.jpg"), recorded_person_id=ann.id)
    row = repo.get_match(match_id)
    assert row is not None and (row.person_id, row.crop_key) == (bob.id, "crops/v3.jpg")

    # "Not this person" on a row the writer recorded as Ann: it stays unknown and rejected.
    (second,) = repo.add_matches([dataclasses.replace(new_match(ann.id), embedding=bytes(512))])
    repo.reject_match(second, T0)
    repo.replace_match(second, new_match(ann.id, crop_key="crops/w.jpg"), recorded_person_id=ann.id)
    row = repo.get_match(second)
    assert row is not None and row.person_id is None and row.rejected_at is not None


def test_purge_matches_oldest_first(repo: SQLRepository) -> None:
    ann = enroll(repo)
    ids = repo.add_matches(
        [
            new_match(ann.id if i % 2 else None, T0 + i * LATER, crop_key=f"crops/{i}.jpg" if i != 1 else None)
            for i in range(5)
        ]
    )

    removed = repo.purge_matches(T0 + 4 * LATER, limit=2)
    assert (removed.rows, removed.face_ids, removed.blob_keys) == (2, [], ["crops/0.jpg"])
    assert [r.id for r in repo.list_matches(MatchFilter(), limit=10, offset=0)[0]] == ids[:1:-1]
    assert repo.pending_blobs(far_future()) == ["crops/0.jpg"]

    removed = repo.purge_matches(T0 + 4 * LATER)
    assert (removed.rows, sorted(removed.blob_keys)) == (2, ["crops/2.jpg", "crops/3.jpg"])
    assert repo.list_matches(MatchFilter(), limit=10, offset=0)[1] == 1
    assert repo.purge_matches(T0 + 4 * LATER).rows == 0
    assert sorted(repo.pending_blobs(far_future())) == ["crops/0.jpg", "crops/2.jpg", "crops/3.jpg"]


# Blob bookkeeping ----------------------------------------------------------------------------------------------


def test_pending_blob_bookkeeping(repo: SQLRepository) -> None:
    repo.begin_blob_writes(["a", "b", "c"])
    repo.begin_blob_writes(["a"])  # again: still one entry
    repo.begin_blob_writes([])
    assert repo.pending_blobs(datetime.now(UTC) - timedelta(minutes=5)) == []  # too recent to settle
    assert sorted(repo.pending_blobs(far_future())) == ["a", "b", "c"]
    assert len(repo.pending_blobs(far_future(), limit=2)) == 2
    repo.forget_pending_blobs(["a", "missing"])
    repo.forget_pending_blobs([])
    assert sorted(repo.pending_blobs(far_future())) == ["b", "c"]


def test_referenced_blobs(repo: SQLRepository) -> None:
    image = new_image()
    repo.save_enrollment(PersonCreate("Ann"), [image])
    repo.add_matches([new_match(None, crop_key="crops/1.jpg"), new_match(None)])
    many = [f"x/{i}" for i in range(CHUNK + 10)]
    assert repo.referenced_blobs([image.blob_key, "crops/1.jpg", "crops/2.jpg", *many]) == {
        image.blob_key,
        "crops/1.jpg",
    }
    assert repo.referenced_blobs([]) == set()
    assert repo.ping()


# Races on PostgreSQL: one side is held open in a raw transaction while the repository call runs ----------------


def _run_while_open(repo: SQLRepository, call: Callable[[], object], hold: Callable[[Connection], None]) -> object:
    """Run `call` in a thread while another transaction (`hold`) is open; commit that transaction once `call`
    waits on one of its locks. Returns what `call` returned or raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    thread = threading.Thread(target=run)
    with repo.db.engine.connect() as conn, conn.begin():
        hold(conn)
        thread.start()
        deadline = time.monotonic() + 10
        with repo.db.engine.connect() as observer:
            while thread.is_alive() and not observer.execute(waiting).scalar():
                assert time.monotonic() < deadline, "the call neither finished nor waited on the open transaction"
                observer.rollback()  # pg_stat_activity is a snapshot taken once per transaction
                time.sleep(0.01)
    thread.join(timeout=10)
    assert not thread.is_alive() and len(outcome) == 1
    return outcome[0]


def test_re_embedding_skips_a_photo_whose_person_is_being_deleted(pg_url: str, open_repo: OpenRepo) -> None:
    repo = open_repo(pg_url)
    image = new_image()
    ann, _ = repo.save_enrollment(PersonCreate("Ann"), [image])
    before = repo.last_change()

    def delete_ann(conn: Connection) -> None:  # what delete_person does, left uncommitted
        conn.execute(text("SELECT id FROM people WHERE id = :p FOR UPDATE"), {"p": ann.id})
        for statement in ("DELETE FROM faces WHERE person_id = :p", "DELETE FROM images WHERE person_id = :p"):
            conn.execute(text(statement), {"p": ann.id})
        conn.execute(text("DELETE FROM people WHERE id = :p"), {"p": ann.id})

    added = _run_while_open(repo, lambda: repo.add_faces([(image.id, new_face(DLIB))]), delete_ann)

    assert added == []  # skipped like any photo deleted meanwhile, not an integrity error
    assert repo.counts()["faces"] == 0
    assert repo.last_change() == before


def test_deleting_a_face_takes_an_embedding_added_meanwhile(pg_url: str, open_repo: OpenRepo) -> None:
    repo = open_repo(pg_url)
    image = new_image()
    ann, (face,) = repo.save_enrollment(PersonCreate("Ann"), [image])
    added: list[int] = []

    def add_dlib_face(conn: Connection) -> None:  # what add_faces does for this photo, left uncommitted
        row = dict(person_id=ann.id, image_id=image.id, **{k: v for k, v in vars(new_face(DLIB)).items()})
        added.append(conn.execute(insert(FaceRecord).values(row).returning(FaceRecord.id)).scalar_one())

    removed = _run_while_open(repo, lambda: repo.delete_face(ann.id, face.id), add_dlib_face)

    assert isinstance(removed, Removed)
    assert sorted(removed.face_ids) == sorted([face.id, *added])  # none removed behind the change log's back
    assert repo.counts()["faces"] == 0
