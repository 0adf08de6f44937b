"""The SQL implementation of the Repository protocol: one class for SQLite and PostgreSQL.

Every public method is one transaction. Database exceptions the caller can act on become facegate.errors.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Insert, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.exc import StaleDataError

from facegate.config import SQLDatabaseSettings
from facegate.errors import Conflict, NotFound, Unavailable
from facegate.store.base import (
    Embedding,
    FaceChange,
    FaceRow,
    ImageRow,
    MatchFilter,
    MatchRow,
    NewFace,
    NewImage,
    NewMatch,
    PersonCreate,
    PersonRow,
    RejectedFace,
    Removed,
    Sighting,
    StoredCandidate,
)
from facegate.store.database import CHANGE_LOG_LOCK, Database
from facegate.store.models import (
    FaceChangeRecord,
    FaceRecord,
    ImageRecord,
    MatchRecord,
    PendingBlob,
    Person,
    RejectionRecord,
    StoreMeta,
    new_id,
)
from facegate.store.sql_history import SQLHistorySearch
from facegate.store.sql_keys import SQLAuditLog, SQLKeyStore
from facegate.store.sql_streams import SQLStreamStore
from facegate.store.sql_suggestions import SQLSuggestionStore

# Keeps IN (...) lists within every database's limit on bound parameters.
CHUNK = 500
TRIMMED_THROUGH = "changes_trimmed_through"
STORE_ID = "store_id"


# Statements every identify runs, built once: building a statement and its cache key on each call cost more CPU
# than running it.
_NAMES = select(Person.id, Person.name).where(Person.id.in_(bindparam("ids", expanding=True)))
_REJECTED = (
    select(RejectionRecord.id, RejectionRecord.person_id, RejectionRecord.match_id, RejectionRecord.embedding)
    .where(
        RejectionRecord.person_id.in_(bindparam("ids", expanding=True)),
        RejectionRecord.engine == bindparam("engine"),
        RejectionRecord.model_version == bindparam("model_version"),
    )
    .order_by(RejectionRecord.id)
)
_ADD_MATCHES = insert(MatchRecord).returning(MatchRecord.id, sort_by_parameter_order=True)
_CLEAR_PENDING = delete(PendingBlob).where(PendingBlob.key.in_(bindparam("keys", expanding=True)))


def _connection(executor: Session | Connection) -> Connection:
    """The Core connection of a session's transaction: a statement on an ORM entity run through the session
    takes the ORM's bulk path (a DELETE evaluates its criteria against every object the session holds)."""
    return executor.connection() if isinstance(executor, Session) else executor


def _upsert_pending(dialect: str) -> Insert:
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(PendingBlob)
    return upsert.on_conflict_do_update(
        index_elements=[PendingBlob.key], set_={"created_at": upsert.excluded.created_at}
    )


_MARK_PENDING = {dialect: _upsert_pending(dialect) for dialect in ("sqlite", "postgresql")}


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _face_row(r: FaceRecord) -> FaceRow:
    return FaceRow(
        id=r.id,
        person_id=r.person_id,
        image_id=r.image_id,
        left=r.left,
        top=r.top,
        width=r.width,
        height=r.height,
        quality=r.quality,
        detector_score=r.detector_score,
        sharpness=r.sharpness,
        engine=r.engine,
        model_version=r.model_version,
        created_at=r.created_at,
        auto=r.auto,
    )


def _image_row(r: ImageRecord) -> ImageRow:
    return ImageRow(
        id=r.id,
        person_id=r.person_id,
        blob_key=r.blob_key,
        sha256=r.sha256,
        filename=r.filename,
        width=r.width,
        height=r.height,
        created_at=r.created_at,
    )


def _match_row(r: MatchRecord) -> MatchRow:
    return MatchRow(
        id=r.id,
        request_id=r.request_id,
        source=r.source,
        created_at=r.created_at,
        person_id=r.person_id,
        distance=r.distance,
        confidence=r.confidence,
        threshold=r.threshold,
        left=r.left,
        top=r.top,
        width=r.width,
        height=r.height,
        quality=r.quality,
        engine=r.engine,
        model_version=r.model_version,
        candidates=[StoredCandidate(str(c["person_id"]), float(c["distance"])) for c in r.candidates or []],
        crop_key=r.crop_key,
        rejected_at=r.rejected_at,
        relabelled_at=r.relabelled_at,
    )


def _face_record(person_id: str, image_id: str, face: NewFace) -> FaceRecord:
    return FaceRecord(
        person_id=person_id,
        image_id=image_id,
        left=face.left,
        top=face.top,
        width=face.width,
        height=face.height,
        quality=face.quality,
        detector_score=face.detector_score,
        sharpness=face.sharpness,
        engine=face.engine,
        model_version=face.model_version,
        embedding=face.embedding,
        auto=face.auto,
    )


def _constraint(exc: IntegrityError) -> str:
    return str(exc.orig).lower()


class SQLRepository:
    def __init__(self, settings: SQLDatabaseSettings, url: str) -> None:
        self._settings = settings
        self.db = Database(url, echo=settings.echo, pool_size=settings.pool_size)
        self._keys = SQLKeyStore(self.db)
        self._audit = SQLAuditLog(self.db)
        self._streams = SQLStreamStore(self.db)
        self._suggestions = SQLSuggestionStore(self.db)
        self._history = SQLHistorySearch(self.db)
        self._opened = False

    @property
    def keys(self) -> SQLKeyStore:
        return self._keys

    @property
    def audit(self) -> SQLAuditLog:
        return self._audit

    @property
    def streams(self) -> SQLStreamStore:
        return self._streams

    @property
    def suggestions(self) -> SQLSuggestionStore:
        return self._suggestions

    @property
    def history(self) -> SQLHistorySearch:
        return self._history

    # Lifecycle ---------------------------------------------------------------------------------------------
    def open(self) -> None:
        self.db.open()
        self._opened = True
        auto = self._settings.auto_migrate
        if auto is None:
            auto = self.db.dialect == "sqlite"
        if auto:
            self.migrate()
            return
        current, head = self.db.schema_revision(), self.db.head_revision()
        if current != head:
            raise Unavailable(
                f"The database schema is at revision {current or 'none'} and this facegate needs {head}: run "
                "`facegate migrate` once (with the same FACEGATE_DATABASE__URL), then start the service.",
                code="schema_out_of_date",
            )

    def migrate(self) -> None:
        if not self._opened:
            self.db.open()
            self._opened = True
        self.db.migrate()

    def close(self) -> None:
        self._suggestions.close()
        self.db.close()
        self._opened = False

    def ping(self) -> bool:
        return self.db.ping()

    def store_id(self) -> str:
        for _ in range(2):
            try:
                with self.db.session() as session:
                    row = session.get(StoreMeta, STORE_ID)
                    if row is not None:
                        return row.value
                    value = new_id()
                    session.add(StoreMeta(key=STORE_ID, value=value))
                    session.flush()
                    return value
            except IntegrityError:  # another process made it first: read theirs
                continue
        raise RuntimeError("could not read or create the store id")

    # Helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _counts_of(session: Session, person_ids: Collection[str]) -> dict[str, int]:
        if not person_ids:
            return {}
        rows = session.execute(
            select(ImageRecord.person_id, func.count())
            .where(ImageRecord.person_id.in_(list(person_ids)))
            .group_by(ImageRecord.person_id)
        ).all()
        return {pid: int(count) for pid, count in rows}

    def _person_row(self, session: Session, person: Person, count: int | None = None) -> PersonRow:
        if count is None:
            count = self._counts_of(session, [person.id]).get(person.id, 0)
        return PersonRow(
            id=person.id,
            name=person.name,
            external_id=person.external_id,
            metadata=dict(person.attributes or {}),
            face_count=count,
            created_at=person.created_at,
            updated_at=person.updated_at,
        )

    @staticmethod
    def _require_person(session: Session, person_id: str, *, lock: bool = False) -> Person:
        query = select(Person).where(Person.id == person_id)
        if lock:
            query = query.with_for_update()
        person = session.scalars(query).first()
        if person is None:
            raise NotFound(f"No person with id {person_id}.", code="person_not_found")
        return person

    @staticmethod
    def _log(session: Session, op: Literal["add", "remove"], faces: Sequence[tuple[int, str, str, str]]) -> None:
        """Append (face id, person id, engine, model version) changes. On PostgreSQL the appends of concurrent
        transactions are serialized by a transaction-scoped lock, so sequence numbers commit in order and a
        reader that has seen n has seen everything below n. SQLite serializes writers anyway."""
        if not faces:
            return
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})
        now = datetime.now(UTC)
        session.add_all(
            FaceChangeRecord(op=op, face_id=f, person_id=p, engine=e, model_version=m, created_at=now)
            for f, p, e, m in faces
        )

    @staticmethod
    def _mark_pending(executor: Session | Connection, keys: Collection[str]) -> None:
        """Record `keys` as pending now (a key already pending gets the new time): one upsert statement."""
        if not keys:
            return
        conn = _connection(executor)
        now = datetime.now(UTC)
        conn.execute(_MARK_PENDING[conn.dialect.name], [{"key": key, "created_at": now} for key in keys])

    @staticmethod
    def _clear_pending(executor: Session | Connection, keys: Sequence[str]) -> None:
        conn = _connection(executor)
        for chunk in _chunks(keys):
            conn.execute(_CLEAR_PENDING, {"keys": list(chunk)})

    # People ------------------------------------------------------------------------------------------------
    def get_person(self, person_id: str) -> PersonRow | None:
        with self.db.session() as session:
            person = session.get(Person, person_id)
            return self._person_row(session, person) if person else None

    def find_person_by_name(self, name: str) -> PersonRow | None:
        with self.db.session() as session:
            query = select(Person).where(Person.name == name).order_by(Person.created_at, Person.id)
            person = session.scalars(query).first()
            return self._person_row(session, person) if person else None

    def find_person_by_external_id(self, external_id: str) -> PersonRow | None:
        with self.db.session() as session:
            person = session.scalars(select(Person).where(Person.external_id == external_id)).first()
            return self._person_row(session, person) if person else None

    def list_people(self, *, limit: int, offset: int, name: str | None) -> tuple[list[PersonRow], int]:
        with self.db.session() as session:
            query = select(Person)
            if name:
                escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                query = query.where(Person.name.ilike(f"%{escaped}%", escape="\\"))
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            people = session.scalars(query.order_by(Person.created_at, Person.id).limit(limit).offset(offset)).all()
            counts = self._counts_of(session, [p.id for p in people])
            return [self._person_row(session, p, counts.get(p.id, 0)) for p in people], total

    def names_of(self, person_ids: Collection[str]) -> dict[str, str]:
        ids = sorted(set(person_ids))
        if not ids:
            return {}
        names: dict[str, str] = {}
        with self.db.transaction() as conn:  # every identify's: no ORM session
            for chunk in _chunks(ids):
                names.update((i, n) for i, n in conn.execute(_NAMES, {"ids": list(chunk)}))
        return names

    def update_person(self, person_id: str, changes: Mapping[str, Any]) -> PersonRow:
        try:
            with self.db.session() as session:
                person = self._require_person(session, person_id, lock=True)
                if "name" in changes:
                    person.name = changes["name"]
                if "external_id" in changes:
                    person.external_id = changes["external_id"]
                if "metadata" in changes:
                    person.attributes = dict(changes["metadata"] or {})
                person.updated_at = datetime.now(UTC)
                session.flush()
                return self._person_row(session, person)
        except IntegrityError as exc:
            raise Conflict(
                f"external_id {changes.get('external_id')!r} belongs to another person.", code="external_id_taken"
            ) from exc
        except StaleDataError as exc:  # deleted by a concurrent request between our read and our update
            raise NotFound(f"No person with id {person_id}.", code="person_not_found") from exc

    def delete_person(self, person_id: str) -> Removed:
        with self.db.session() as session:
            person = self._require_person(session, person_id, lock=True)
            faces = session.execute(
                select(FaceRecord.id, FaceRecord.person_id, FaceRecord.engine, FaceRecord.model_version).where(
                    FaceRecord.person_id == person_id
                )
            ).all()
            face_list = [(int(f), p, e, m) for f, p, e, m in faces]
            keys = list(session.scalars(select(ImageRecord.blob_key).where(ImageRecord.person_id == person_id)))
            keys += [
                k
                for k in session.scalars(
                    select(MatchRecord.crop_key).where(
                        MatchRecord.person_id == person_id, MatchRecord.crop_key.is_not(None)
                    )
                )
                if k
            ]
            # Explicit deletes rather than ON DELETE CASCADE, which SQLite only honours with a pragma.
            session.execute(delete(MatchRecord).where(MatchRecord.person_id == person_id))
            session.execute(delete(FaceRecord).where(FaceRecord.person_id == person_id))
            session.execute(delete(ImageRecord).where(ImageRecord.person_id == person_id))
            session.delete(person)
            self._log(session, "remove", face_list)
            self._mark_pending(session, keys)
        return Removed(face_ids=[f for f, *_ in face_list], blob_keys=keys)

    def merge_people(self, into: str, source: str) -> tuple[PersonRow, Removed]:
        with self.db.session() as session:
            # Both locked, in id order: a merge the other way round waits instead of deadlocking.
            for person_id in sorted({into, source}):
                self._require_person(session, person_id, lock=True)
            target = self._require_person(session, into)
            moving = session.get(Person, source)
            assert moving is not None
            have = set(session.scalars(select(ImageRecord.sha256).where(ImageRecord.person_id == into)))
            images = session.execute(
                select(ImageRecord.id, ImageRecord.sha256, ImageRecord.blob_key).where(ImageRecord.person_id == source)
            ).all()
            duplicates = [image_id for image_id, sha, _ in images if sha in have]
            keys = [key for image_id, sha, key in images if sha in have]
            faces = session.execute(
                select(FaceRecord.id, FaceRecord.image_id, FaceRecord.engine, FaceRecord.model_version).where(
                    FaceRecord.person_id == source
                )
            ).all()
            dropped = set(duplicates)
            session.execute(delete(FaceRecord).where(FaceRecord.image_id.in_(duplicates)))
            session.execute(delete(ImageRecord).where(ImageRecord.id.in_(duplicates)))
            session.execute(update(FaceRecord).where(FaceRecord.person_id == source).values(person_id=into))
            session.execute(update(ImageRecord).where(ImageRecord.person_id == source).values(person_id=into))
            session.execute(update(MatchRecord).where(MatchRecord.person_id == source).values(person_id=into))
            # What was "not this person" for one of them is not the merged person either.
            session.execute(update(RejectionRecord).where(RejectionRecord.person_id == source).values(person_id=into))
            session.delete(moving)
            target.updated_at = datetime.now(UTC)
            self._log(session, "remove", [(int(f), source, e, m) for f, _, e, m in faces])
            self._log(session, "add", [(int(f), into, e, m) for f, image_id, e, m in faces if image_id not in dropped])
            self._mark_pending(session, keys)
            session.flush()
            return self._person_row(session, target), Removed(
                face_ids=[int(f) for f, image_id, _, _ in faces if image_id in dropped], blob_keys=keys
            )

    # Enrollment --------------------------------------------------------------------------------------------
    def save_enrollment(self, person: PersonCreate | str, images: list[NewImage]) -> tuple[PersonRow, list[FaceRow]]:
        try:
            with self.db.session() as session:
                if isinstance(person, str):
                    # Locked so that a delete of this person cannot commit between our check and our insert.
                    record = self._require_person(session, person, lock=True)
                else:
                    record = Person(
                        id=new_id(), name=person.name, external_id=person.external_id, attributes=person.metadata
                    )
                    session.add(record)
                    session.flush()  # the person row must exist before its images reference it
                faces: list[FaceRecord] = []
                for image in images:
                    session.add(
                        ImageRecord(
                            id=image.id,
                            person_id=record.id,
                            blob_key=image.blob_key,
                            sha256=image.sha256,
                            filename=image.filename,
                            width=image.width,
                            height=image.height,
                        )
                    )
                    faces += [_face_record(record.id, image.id, face) for face in image.faces]
                session.flush()
                session.add_all(faces)
                session.flush()
                record.updated_at = datetime.now(UTC)
                self._log(session, "add", [(f.id, f.person_id, f.engine, f.model_version) for f in faces])
                self._clear_pending(session, [i.blob_key for i in images])
                return self._person_row(session, record), [_face_row(f) for f in faces]
        except IntegrityError as exc:
            detail = _constraint(exc)
            if "external_id" in detail:
                raise Conflict(
                    f"external_id {getattr(person, 'external_id', None)!r} is already in use.",
                    code="external_id_taken",
                ) from exc
            if "sha256" in detail:
                raise Conflict("This photo is already enrolled for this person.", code="duplicate_image") from exc
            if "foreign key" in detail:  # the person was deleted meanwhile
                raise NotFound(f"No person with id {person}.", code="person_not_found") from exc
            raise

    def image_exists(self, person_id: str, sha256: str) -> bool:
        with self.db.session() as session:
            query = select(ImageRecord.id).where(ImageRecord.person_id == person_id, ImageRecord.sha256 == sha256)
            return session.scalars(query).first() is not None

    def list_faces(self, person_id: str) -> list[FaceRow]:
        with self.db.session() as session:
            self._require_person(session, person_id)
            query = select(FaceRecord).where(FaceRecord.person_id == person_id).order_by(FaceRecord.id)
            return [_face_row(r) for r in session.scalars(query)]

    def _require_face(self, session: Session, person_id: str, face_id: int, *, lock: bool = False) -> FaceRecord:
        self._require_person(session, person_id, lock=lock)
        face = session.get(FaceRecord, face_id)
        if face is None or face.person_id != person_id:
            raise NotFound(f"Person {person_id} has no face {face_id}.", code="face_not_found")
        return face

    def get_face(self, person_id: str, face_id: int) -> tuple[FaceRow, ImageRow]:
        with self.db.session() as session:
            face = self._require_face(session, person_id, face_id)
            return _face_row(face), _image_row(face.image)

    def delete_face(self, person_id: str, face_id: int) -> Removed:
        """Enrollment keeps one face per photo, so a face goes with its photo and every embedding of it (one
        per engine)."""
        with self.db.session() as session:
            # The person is locked first, as every write on a person does: a re-embedding adding a face to this
            # photo (add_faces key-share locks the person) commits before we list the photo's faces, and a
            # concurrent delete of this face or person finishes first and is then seen.
            face = self._require_face(session, person_id, face_id, lock=True)
            image = face.image
            siblings = session.scalars(select(FaceRecord).where(FaceRecord.image_id == image.id)).all()
            changes = [(f.id, f.person_id, f.engine, f.model_version) for f in siblings]
            session.execute(delete(FaceRecord).where(FaceRecord.image_id == image.id))
            key = image.blob_key
            session.execute(delete(ImageRecord).where(ImageRecord.id == image.id))
            person = self._require_person(session, person_id)
            person.updated_at = datetime.now(UTC)
            self._log(session, "remove", changes)
            self._mark_pending(session, [key])
        return Removed(face_ids=[c[0] for c in changes], blob_keys=[key])

    # Embeddings, re-embedding and the change log -----------------------------------------------------------
    def iter_embeddings(
        self, engine: str, model_version: str, *, ids: Collection[int] | None = None
    ) -> Iterator[Embedding]:
        base = select(FaceRecord.id, FaceRecord.person_id, FaceRecord.embedding).where(
            FaceRecord.engine == engine, FaceRecord.model_version == model_version
        )
        queries = [base] if ids is None else [base.where(FaceRecord.id.in_(c)) for c in _chunks(sorted(ids))]
        with self.db.session() as session:
            for query in queries:
                rows = session.execute(query.order_by(FaceRecord.id).execution_options(yield_per=2000))
                for face_id, person_id, vector in rows:
                    yield Embedding(int(face_id), str(person_id), bytes(vector))

    def images_missing_embedding(self, engine: str, model_version: str) -> list[str]:
        current = (
            select(FaceRecord.id)
            .where(
                FaceRecord.image_id == ImageRecord.id,
                FaceRecord.engine == engine,
                FaceRecord.model_version == model_version,
            )
            .exists()
        )
        with self.db.session() as session:
            return list(session.scalars(select(ImageRecord.id).where(~current).order_by(ImageRecord.id)))

    def sightings(
        self, engine: str, model_version: str, *, unknown_only: bool, after_id: int = 0, limit: int = 10_000
    ) -> list[Sighting]:
        query = (
            select(MatchRecord.id, MatchRecord.person_id, MatchRecord.embedding)
            .where(
                MatchRecord.id > after_id,
                MatchRecord.engine == engine,
                MatchRecord.model_version == model_version,
                MatchRecord.embedding.is_not(None),
            )
            .order_by(MatchRecord.id)
            .limit(limit)
        )
        if unknown_only:
            query = query.where(MatchRecord.person_id.is_(None))
        with self.db.session() as session:
            return [Sighting(int(i), p, bytes(e)) for i, p, e in session.execute(query) if e is not None]

    def get_matches(self, match_ids: Collection[int]) -> list[MatchRow]:
        rows: list[MatchRow] = []
        with self.db.session() as session:
            for chunk in _chunks(sorted(set(match_ids))):
                query = select(MatchRecord).where(MatchRecord.id.in_(chunk)).order_by(MatchRecord.id)
                rows += [_match_row(r) for r in session.scalars(query)]
        return rows

    def sibling_embeddings(self, face_ids: Collection[int], engine: str, model_version: str) -> dict[int, bytes]:
        sibling = aliased(FaceRecord)
        result: dict[int, bytes] = {}
        with self.db.session() as session:
            for chunk in _chunks(sorted(set(face_ids))):
                query = (
                    select(FaceRecord.id, sibling.embedding)
                    .join(sibling, sibling.image_id == FaceRecord.image_id)
                    .where(
                        FaceRecord.id.in_(chunk),
                        sibling.engine == engine,
                        sibling.model_version == model_version,
                    )
                )
                result.update((int(face_id), bytes(vector)) for face_id, vector in session.execute(query))
        return result

    def get_image(self, image_id: str) -> ImageRow | None:
        with self.db.session() as session:
            record = session.get(ImageRecord, image_id)
            return _image_row(record) if record else None

    def add_faces(self, faces: list[tuple[str, NewFace]]) -> list[FaceRow]:
        with self.db.session() as session:
            image_ids = sorted({i for i, _ in faces})
            # Key-share locks on the people, then their photos, in the order deletes lock them: a delete under
            # way finishes first and its photos are skipped here (rather than failing the insert on a foreign
            # key), and a later delete waits for these faces and removes them with the rest, in the change log.
            people = select(ImageRecord.person_id).where(ImageRecord.id.in_(image_ids))
            session.execute(
                select(Person.id)
                .where(Person.id.in_(people))
                .order_by(Person.id)
                .with_for_update(read=True, key_share=True)
            )
            wanted = (
                select(ImageRecord.id, ImageRecord.person_id)
                .where(ImageRecord.id.in_(image_ids))
                .with_for_update(read=True, key_share=True)
            )
            owners = {i: p for i, p in session.execute(wanted)}
            records = [_face_record(owners[i], i, f) for i, f in faces if i in owners]
            session.add_all(records)
            session.flush()
            self._log(session, "add", [(r.id, r.person_id, r.engine, r.model_version) for r in records])
            return [_face_row(r) for r in records]

    def last_change(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.max(FaceChangeRecord.seq))) or 0)

    def changes_since(self, seq: int, *, limit: int = 10_000) -> list[FaceChange] | None:
        with self.db.session() as session:
            rows = session.scalars(
                select(FaceChangeRecord).where(FaceChangeRecord.seq > seq).order_by(FaceChangeRecord.seq).limit(limit)
            ).all()
            # The trim mark is read after the rows: on PostgreSQL each statement sees its own snapshot, so a trim
            # committing between the two reads is then seen (a needless reload at worst), never rows with a hole.
            trimmed = session.get(StoreMeta, TRIMMED_THROUGH)
            if trimmed is not None and seq < int(trimmed.value):
                return None
            return [
                FaceChange(
                    seq=r.seq,
                    op="add" if r.op == "add" else "remove",
                    face_id=r.face_id,
                    person_id=r.person_id,
                    engine=r.engine,
                    model_version=r.model_version,
                )
                for r in rows
            ]

    def trim_changes(self, before: datetime) -> int:
        with self.db.session() as session:
            through = session.scalar(select(func.max(FaceChangeRecord.seq)).where(FaceChangeRecord.created_at < before))
            if through is None:
                return 0
            # Never trim the newest entry: it tells a fresh reader where the log stands.
            newest = session.scalar(select(func.max(FaceChangeRecord.seq))) or 0
            through = min(int(through), int(newest) - 1)
            if through <= 0:
                return 0
            result = session.execute(delete(FaceChangeRecord).where(FaceChangeRecord.seq <= through))
            session.merge(StoreMeta(key=TRIMMED_THROUGH, value=str(through)))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # Match history -----------------------------------------------------------------------------------------
    def add_matches(self, matches: list[NewMatch]) -> list[int]:
        # Every identify's write: one Core statement on a plain connection (the ORM's unit of work cost more CPU
        # than the SQL), ids returned in the order of `matches`.
        rows = [
            {
                "request_id": m.request_id,
                "source": m.source,
                "created_at": m.created_at,
                "person_id": m.person_id,
                "distance": m.distance,
                "confidence": m.confidence,
                "threshold": m.threshold,
                "left": m.left,
                "top": m.top,
                "width": m.width,
                "height": m.height,
                "quality": m.quality,
                "engine": m.engine,
                "model_version": m.model_version,
                "candidates": [{"person_id": c.person_id, "distance": c.distance} for c in m.candidates],
                "crop_key": m.crop_key,
                "embedding": m.embedding,
            }
            for m in matches
        ]
        if not rows:
            return []
        try:
            with self.db.transaction() as conn:
                ids = [int(i) for i in conn.execute(_ADD_MATCHES, rows).scalars()]
                self._clear_pending(conn, [m.crop_key for m in matches if m.crop_key])
                return ids
        except IntegrityError as exc:  # a matched person was deleted between the search and this write
            raise NotFound("A matched person was deleted meanwhile.", code="person_not_found") from exc

    def replace_match(self, match_id: int, match: NewMatch, *, recorded_person_id: str | None) -> str | None:
        try:
            with self.db.session() as session:
                query = select(MatchRecord).where(MatchRecord.id == match_id).with_for_update()
                record = session.scalars(query).first()
                if record is None:
                    raise NotFound(f"No match with id {match_id}.", code="match_not_found")
                old = record.crop_key
                record.request_id = match.request_id
                record.source = match.source
                ruled = (
                    record.person_id != recorded_person_id
                    or record.rejected_at is not None
                    or record.relabelled_at is not None
                )
                if not ruled:  # else a user's (or retro-search's) ruling on the row stands
                    record.person_id = match.person_id
                    record.distance = match.distance
                    record.confidence = match.confidence
                record.threshold = match.threshold
                record.left, record.top, record.width, record.height = match.left, match.top, match.width, match.height
                record.quality = match.quality
                record.engine = match.engine
                record.model_version = match.model_version
                record.candidates = [{"person_id": c.person_id, "distance": c.distance} for c in match.candidates]
                record.crop_key = match.crop_key
                record.embedding = match.embedding
                session.flush()
                self._clear_pending(session, [match.crop_key] if match.crop_key else [])
                if old is None or old == match.crop_key:
                    return None
                self._mark_pending(session, [old])
                return old
        except IntegrityError as exc:  # the matched person was deleted between the search and this write
            raise NotFound("A matched person was deleted meanwhile.", code="person_not_found") from exc

    def list_matches(self, query: MatchFilter, *, limit: int, offset: int) -> tuple[list[MatchRow], int]:
        statement = select(MatchRecord)
        if query.person_id:
            statement = statement.where(MatchRecord.person_id == query.person_id)
        if query.unknown_only:
            statement = statement.where(MatchRecord.person_id.is_(None))
        if query.since:
            statement = statement.where(MatchRecord.created_at >= query.since)
        if query.until:
            statement = statement.where(MatchRecord.created_at < query.until)
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.scalars(statement.order_by(MatchRecord.id.desc()).limit(limit).offset(offset))
            return [_match_row(r) for r in rows], total

    def get_match(self, match_id: int) -> MatchRow | None:
        with self.db.session() as session:
            record = session.get(MatchRecord, match_id)
            return _match_row(record) if record else None

    def label_match(self, match_id: int, person_id: str) -> bool:
        try:
            with self.db.session() as session:
                record = session.get(MatchRecord, match_id)
                if record is None:
                    return False
                record.person_id = person_id
                session.flush()
                return True
        except IntegrityError as exc:  # the person was deleted meanwhile
            raise NotFound(f"No person with id {person_id}.", code="person_not_found") from exc

    def purge_matches(self, before: datetime, *, limit: int = 1000) -> Removed:
        with self.db.session() as session:
            rows = session.execute(
                select(MatchRecord.id, MatchRecord.crop_key)
                .where(MatchRecord.created_at < before)
                .order_by(MatchRecord.id)
                .limit(limit)
            ).all()
            pairs = list(rows)
            ids = [i for i, _ in pairs]
            keys = [k for _, k in pairs if k]
            for chunk in _chunks(ids):
                session.execute(delete(MatchRecord).where(MatchRecord.id.in_(chunk)))
            self._mark_pending(session, keys)
        return Removed(face_ids=[], blob_keys=keys, rows=len(ids))

    # Blob bookkeeping --------------------------------------------------------------------------------------
    def begin_blob_writes(self, keys: list[str]) -> None:
        if keys:
            with self.db.transaction() as conn:
                self._mark_pending(conn, keys)

    def forget_pending_blobs(self, keys: list[str]) -> None:
        if keys:
            with self.db.session() as session:
                self._clear_pending(session, keys)

    def pending_blobs(self, older_than: datetime, *, limit: int = 1000) -> list[str]:
        with self.db.session() as session:
            query = (
                select(PendingBlob.key)
                .where(PendingBlob.created_at < older_than)
                .order_by(PendingBlob.created_at)
                .limit(limit)
            )
            return list(session.scalars(query))

    def referenced_blobs(self, keys: Collection[str]) -> set[str]:
        found: set[str] = set()
        with self.db.session() as session:
            for chunk in _chunks(sorted(keys)):
                found.update(session.scalars(select(ImageRecord.blob_key).where(ImageRecord.blob_key.in_(chunk))))
                found.update(
                    k for k in session.scalars(select(MatchRecord.crop_key).where(MatchRecord.crop_key.in_(chunk))) if k
                )
        return found

    def counts(self) -> dict[str, int]:
        with self.db.session() as session:

            def count(model: Any, *where: Any) -> int:
                return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

            return {
                "people": count(Person),
                "faces": count(FaceRecord),
                "images": count(ImageRecord),
                "matches": count(MatchRecord),
                "unknown_matches": count(MatchRecord, MatchRecord.person_id.is_(None)),
            }

    # People tools: "not this person", split, relabelling ---------------------------------------------------
    def reject_match(self, match_id: int, at: datetime) -> tuple[MatchRow, str]:
        with self.db.session() as session:
            record = session.scalars(select(MatchRecord).where(MatchRecord.id == match_id).with_for_update()).first()
            if record is None:
                raise NotFound(f"No match with id {match_id}.", code="match_not_found")
            person_id = record.person_id
            if person_id is None:
                raise Conflict(f"Match {match_id} names nobody: there is no person to reject.", code="match_not_named")
            if record.embedding is None:
                raise Conflict(
                    f"Match {match_id} was kept without its face's embedding (older history); it cannot be rejected.",
                    code="no_embedding",
                )
            session.add(
                RejectionRecord(
                    person_id=person_id,
                    match_id=record.id,
                    engine=record.engine,
                    model_version=record.model_version,
                    embedding=record.embedding,
                    created_at=at,
                )
            )
            record.person_id = None
            record.distance = None
            record.confidence = None
            record.rejected_at = at
            session.flush()
            return _match_row(record), person_id

    def rejected_faces(self, person_ids: Collection[str], engine: str, model_version: str) -> list[RejectedFace]:
        found: list[RejectedFace] = []
        with self.db.transaction() as conn:  # asked by every identify that names someone: no ORM session
            for chunk in _chunks(sorted(set(person_ids))):
                params = {"ids": list(chunk), "engine": engine, "model_version": model_version}
                found += [
                    RejectedFace(r.id, r.person_id, r.match_id, engine, model_version, bytes(r.embedding))
                    for r in conn.execute(_REJECTED, params)
                ]
        return found

    def split_person(
        self, source: str, face_ids: Collection[int], target: PersonCreate | str
    ) -> tuple[PersonRow, Removed]:
        try:
            with self.db.session() as session:
                if isinstance(target, str):
                    # Both locked, in id order, as merge does: a split the other way round waits.
                    for person_id in sorted({source, target}):
                        self._require_person(session, person_id, lock=True)
                    dest = self._require_person(session, target)
                else:
                    self._require_person(session, source, lock=True)
                    dest = Person(
                        id=new_id(), name=target.name, external_id=target.external_id, attributes=target.metadata
                    )
                    session.add(dest)
                    session.flush()
                wanted = sorted(set(face_ids))
                chosen: dict[int, str] = {}
                for chunk in _chunks(wanted):
                    query = select(FaceRecord.id, FaceRecord.image_id).where(
                        FaceRecord.id.in_(chunk), FaceRecord.person_id == source
                    )
                    chosen.update((int(f), str(i)) for f, i in session.execute(query))
                missing = [f for f in wanted if f not in chosen]
                if missing:
                    raise NotFound(f"Person {source} has no face {missing[0]}.", code="face_not_found")
                image_ids = sorted(set(chosen.values()))
                have = set(session.scalars(select(ImageRecord.sha256).where(ImageRecord.person_id == dest.id)))
                images = session.execute(
                    select(ImageRecord.id, ImageRecord.sha256, ImageRecord.blob_key).where(
                        ImageRecord.id.in_(image_ids)
                    )
                ).all()
                dropped = {image_id for image_id, sha, _ in images if sha in have}
                keys = [key for image_id, _, key in images if image_id in dropped]
                # Every face of the chosen photos moves: the fused engine keeps two rows (descriptors) per photo.
                faces = session.execute(
                    select(FaceRecord.id, FaceRecord.image_id, FaceRecord.engine, FaceRecord.model_version).where(
                        FaceRecord.image_id.in_(image_ids)
                    )
                ).all()
                session.execute(delete(FaceRecord).where(FaceRecord.image_id.in_(dropped)))
                session.execute(delete(ImageRecord).where(ImageRecord.id.in_(dropped)))
                kept = [image_id for image_id in image_ids if image_id not in dropped]
                session.execute(update(FaceRecord).where(FaceRecord.image_id.in_(kept)).values(person_id=dest.id))
                session.execute(update(ImageRecord).where(ImageRecord.id.in_(kept)).values(person_id=dest.id))
                now = datetime.now(UTC)
                self._require_person(session, source).updated_at = now
                dest.updated_at = now
                self._log(session, "remove", [(int(f), source, e, m) for f, _, e, m in faces])
                self._log(session, "add", [(int(f), dest.id, e, m) for f, i, e, m in faces if i not in dropped])
                self._mark_pending(session, keys)
                session.flush()
                return self._person_row(session, dest), Removed(
                    face_ids=[int(f) for f, i, _, _ in faces if i in dropped], blob_keys=keys
                )
        except IntegrityError as exc:
            if "external_id" in _constraint(exc):
                raise Conflict(
                    f"external_id {getattr(target, 'external_id', None)!r} is already in use.", code="external_id_taken"
                ) from exc
            raise

    def relabel_matches(self, distances: Mapping[int, float], person_id: str, at: datetime) -> list[int]:
        with self.db.session() as session:
            self._require_person(session, person_id, lock=True)
            rejected = select(RejectionRecord.match_id).where(
                RejectionRecord.person_id == person_id, RejectionRecord.match_id.is_not(None)
            )
            done: list[int] = []
            for chunk in _chunks(sorted(distances)):
                query = select(MatchRecord).where(
                    MatchRecord.id.in_(chunk), MatchRecord.person_id.is_(None), MatchRecord.id.not_in(rejected)
                )
                for record in session.scalars(query.with_for_update()):
                    record.person_id = person_id
                    record.distance = distances[record.id]
                    record.relabelled_at = at
                    done.append(record.id)
            return sorted(done)
