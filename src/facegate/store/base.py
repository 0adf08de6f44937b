"""The store behind the services: plain dataclasses in and out, and the Repository protocol.

Services never see sessions, queries or database exceptions. Each protocol method is one atomic operation
(one transaction in SQL), so a DynamoDB implementation can plug in with no edits in services. Failures the
caller can act on are raised as facegate.errors (NotFound, Conflict), never as backend exceptions.

Blob keys follow a write-ahead discipline that the store records, so a crash leaves neither orphan blobs nor
rows pointing at missing blobs:
- writes: `begin_blob_writes(keys)` is committed before the blobs are written; the operation that stores the
  referencing rows clears those keys in the same transaction. Left over after a crash: `pending_blobs`.
- deletes: the operation that removes rows returns their blob keys and records them as pending in the same
  transaction; the caller deletes the blobs, then `forget_pending_blobs(keys)`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from facegate.config import Metric


@dataclass(frozen=True)
class PersonRow:
    id: str
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    face_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PersonCreate:
    name: str
    external_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewFace:
    left: int
    top: int
    width: int
    height: int
    quality: float
    detector_score: float
    sharpness: float
    engine: str
    model_version: str
    embedding: bytes  # float32, little-endian
    auto: bool = False  # added by identify's safe auto-enrollment, not by a user


@dataclass(frozen=True)
class NewImage:
    """An enrolled photo (already written to the blob store under `blob_key`) and the faces taken from it."""

    id: str
    blob_key: str
    sha256: str
    filename: str | None
    width: int
    height: int
    faces: list[NewFace]


@dataclass(frozen=True)
class ImageRow:
    id: str
    person_id: str
    blob_key: str
    sha256: str
    filename: str | None
    width: int
    height: int
    created_at: datetime


@dataclass(frozen=True)
class FaceRow:
    id: int
    person_id: str
    image_id: str
    left: int
    top: int
    width: int
    height: int
    quality: float
    detector_score: float
    sharpness: float
    engine: str
    model_version: str
    created_at: datetime
    auto: bool = False  # added by identify's safe auto-enrollment


@dataclass(frozen=True)
class Embedding:
    face_id: int
    person_id: str
    vector: bytes  # float32, little-endian


@dataclass(frozen=True)
class FaceChange:
    """One entry of the change log: a face of `engine`/`model_version` was added or removed."""

    seq: int
    op: Literal["add", "remove"]
    face_id: int
    person_id: str
    engine: str
    model_version: str


@dataclass(frozen=True)
class StoredCandidate:
    """A candidate as kept in history: names are looked up when read, so a rename shows and a deleted person
    simply drops out (deleting a person never rewrites other people's history)."""

    person_id: str
    distance: float


@dataclass(frozen=True)
class NewMatch:
    request_id: str
    source: str
    created_at: datetime
    person_id: str | None
    distance: float | None
    confidence: float | None
    threshold: float
    left: int
    top: int
    width: int
    height: int
    quality: float
    engine: str
    model_version: str
    candidates: list[StoredCandidate]
    crop_key: str | None
    # The face's embedding (float32 bytes). Written with the match; history rows read back leave it out (None):
    # `Repository.sightings` is the one reader.
    embedding: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class MatchRow(NewMatch):
    id: int
    rejected_at: datetime | None = None  # "not this person" (person_id cleared; see RejectedFace)
    relabelled_at: datetime | None = None  # named afterwards by relabelling


@dataclass(frozen=True)
class RejectedFace:
    """A face a user said is not `person_id` (its embedding, of `engine`/`model_version`)."""

    id: int
    person_id: str
    match_id: int | None
    engine: str
    model_version: str
    embedding: bytes


@dataclass(frozen=True)
class Sighting:
    """A face in match history with its embedding, for comparing past faces with a person."""

    match_id: int
    person_id: str | None
    embedding: bytes


@dataclass(frozen=True)
class MatchFilter:
    person_id: str | None = None
    unknown_only: bool = False
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Removed:
    """What an operation took out of the store: faces to drop from an in-process index, blob keys to delete
    (recorded as pending deletes until `forget_pending_blobs`)."""

    face_ids: list[int]
    blob_keys: list[str]
    rows: int = 0  # rows of the operation's own kind (e.g. matches purged)


@dataclass(frozen=True)
class KeyRow:
    """An API key as stored: never the key itself, only its keyed hash."""

    id: str
    name: str
    scopes: list[str]
    prefix: str  # the first characters of the key, to tell keys apart in listings
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class KeyCreate:
    name: str
    scopes: list[str]
    prefix: str
    key_hash: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    """Who (key id and client address) did what to which record, and when. Never key material or images."""

    at: datetime
    action: str
    key_id: str | None
    address: str | None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AuditRow(AuditEntry):
    id: int


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    key_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class StreamCreate:
    name: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamStatus:
    """What the process running a stream reports every few seconds (tracks: the announced ones, as JSON)."""

    state: str
    fps: float
    lag_seconds: float
    frames: int
    dropped_frames: int
    error: str | None
    tracks: list[dict[str, Any]]
    worker: str
    at: datetime


@dataclass(frozen=True)
class StreamRow:
    id: str
    name: str
    source: str
    options: dict[str, Any]
    enabled: bool
    created_at: datetime
    status: StreamStatus | None  # None until a process has run it


class StreamStore(Protocol):
    def create(self, stream: StreamCreate) -> StreamRow:
        """Conflict(stream_name_taken) when the name is in use."""
        ...

    def get(self, stream_id: str) -> StreamRow | None: ...

    def list_streams(self) -> list[StreamRow]:
        """Oldest first."""
        ...

    def delete(self, stream_id: str) -> None:
        """NotFound(stream_not_found)."""
        ...

    def set_enabled(self, stream_id: str, enabled: bool) -> StreamRow:
        """Enable or disable a stream (processes run only enabled ones). NotFound(stream_not_found)."""
        ...

    def report(self, stream_id: str, status: StreamStatus) -> bool:
        """Write a stream's live status; False when the stream is gone (deleted meanwhile)."""
        ...


@dataclass(frozen=True)
class UnknownFace:
    """A face of match history that came back unknown, with its embedding and the group it is in (if any)."""

    match_id: int
    request_id: str
    embedding: bytes
    suggestion_id: str | None
    dismissed: bool = False  # its group was dismissed


@dataclass(frozen=True)
class SuggestionRow:
    """A group of unknown faces. `sightings`: distinct requests (photos, video tracks) among its faces."""

    id: str
    size: int
    sightings: int
    first_seen: datetime
    last_seen: datetime
    sources: list[str]
    created_at: datetime
    dismissed_at: datetime | None
    notified_at: datetime | None


@dataclass(frozen=True)
class SuggestionFilter:
    engine: str
    model_version: str
    min_faces: int = 1
    min_sightings: int = 1
    unnotified_only: bool = False


@dataclass(frozen=True)
class GroupingUpdate:
    """Group changes of one embedding space: match id -> group id (created when new), or None to leave groups.
    Faces that are no longer unknown, gone, or in a dismissed group are left as they are."""

    engine: str
    model_version: str
    changes: Mapping[int, str | None]


class HistorySearch(Protocol):
    def nearest(
        self,
        engine: str,
        model_version: str,
        metric: Metric,
        probe: bytes,
        *,
        within: float,
        unknown_only: bool,
        limit: int | None = None,
    ) -> list[Sighting] | None:
        """History faces of this space whose embedding is within `within` of `probe` (float32 bytes; the engine's
        metric), nearest first, at most `limit` (every one when None), found through the database's vector index:
        candidates, whose distances callers measure themselves. None when the store has no such index (SQLite):
        callers compare `Repository.sightings` pages then."""
        ...

    def count(self, engine: str, model_version: str, *, unknown_only: bool) -> int:
        """How many faces `Repository.sightings` would list."""
        ...


class SuggestionStore(Protocol):
    def lead_grouping(self) -> bool:
        """Whether this process is the one that groups unknown faces (several API replicas share a store, one
        groups): takes a store-wide lock when it is free and keeps it; True while held. `close` gives it up."""
        ...

    def close(self) -> None:
        """Give up the grouping lock, if held."""
        ...

    def unknown_faces(
        self, engine: str, model_version: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[UnknownFace]:
        """Unknown history faces with an embedding of this space, in id order after `after_id` (pages of `limit`)."""
        ...

    def save_grouping(self, grouping: GroupingUpdate) -> int:
        """Apply group changes at once; faces named meanwhile leave their groups, and groups (not dismissed) left
        without faces are deleted. Returns the new
        `generation` (one more than before when no other process wrote meanwhile)."""
        ...

    def generation(self) -> int:
        """A number that changes with every write to groups (by any process): tells a reader its view is stale."""
        ...

    def list_suggestions(self, query: SuggestionFilter, *, limit: int, offset: int) -> tuple[list[SuggestionRow], int]:
        """Groups not dismissed with at least `min_faces` faces and `min_sightings` sightings, most recently seen
        first, and the total."""
        ...

    def get(self, suggestion_id: str) -> SuggestionRow | None:
        """A group (dismissed ones too); None when there is none or it has no faces."""
        ...

    def members(self, suggestion_id: str) -> list[int]:
        """The match ids of a group's faces, oldest first."""
        ...

    def embeddings(self, match_ids: Collection[int]) -> dict[int, bytes]:
        """The embeddings kept with these history faces (those that have one)."""
        ...

    def dismiss(self, suggestion_id: str, at: datetime) -> bool:
        """False when there is no such group (or it has no faces)."""
        ...

    def mark_notified(self, suggestion_id: str, at: datetime) -> bool:
        """Record that the group was announced; True only for the one caller that recorded it first."""
        ...

    def resolve(self, suggestion_id: str, person_id: str) -> int:
        """The group's faces that are still unknown become sightings of `person_id`, and the group goes; returns
        how many faces were labelled. NotFound(suggestion_not_found | person_not_found)."""
        ...


class KeyStore(Protocol):
    def create(self, key: KeyCreate, *, only_if_none: bool = False) -> KeyRow | None:
        """Store a new key. With `only_if_none`, atomically store it only when the store has no key at all
        (first start; replicas starting together create one admin key between them); None otherwise."""
        ...

    def find_by_hash(self, key_hash: str) -> KeyRow | None: ...

    def list_keys(self) -> list[KeyRow]: ...

    def get(self, key_id: str) -> KeyRow | None: ...

    def revoke(self, key_id: str, at: datetime) -> KeyRow:
        """NotFound(key_not_found). Revoking twice keeps the first time."""
        ...

    def touch(self, key_id: str, at: datetime) -> None:
        """Record a use (callers throttle this)."""
        ...


class AuditLog(Protocol):
    def record(self, entry: AuditEntry) -> None: ...

    def query(self, query: AuditFilter, *, limit: int, offset: int) -> tuple[list[AuditRow], int]:
        """Newest first, and the total."""
        ...


class Repository(Protocol):
    # API keys and the audit log live in the same store, behind their own small protocols.
    @property
    def keys(self) -> KeyStore: ...

    @property
    def audit(self) -> AuditLog: ...

    # Video streams to run and their live status.
    @property
    def streams(self) -> StreamStore: ...

    # Suggested people: groups of recurring unknown faces.
    @property
    def suggestions(self) -> SuggestionStore: ...

    # Match history searched by vector, where the database has an index for it.
    @property
    def history(self) -> HistorySearch: ...

    # Lifecycle ---------------------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect. Raises facegate.errors.Unavailable when the schema is older than the code and the store
        may not migrate itself (a server database: run `facegate migrate`)."""
        ...

    def migrate(self) -> None:
        """Bring the schema to the newest version (safe when several processes call it at once)."""
        ...

    def close(self) -> None: ...

    def ping(self) -> bool: ...

    def store_id(self) -> str:
        """A random id of this store, made once: tells a snapshot of this store's index from another's."""
        ...

    # People ------------------------------------------------------------------------------------------------
    def get_person(self, person_id: str) -> PersonRow | None: ...

    def find_person_by_name(self, name: str) -> PersonRow | None:
        """The oldest person with exactly this name."""
        ...

    def find_person_by_external_id(self, external_id: str) -> PersonRow | None: ...

    def list_people(self, *, limit: int, offset: int, name: str | None) -> tuple[list[PersonRow], int]:
        """A page of people (oldest first) and the total; `name` is a case-insensitive substring, taken
        literally (no wildcards)."""
        ...

    def names_of(self, person_ids: Collection[str]) -> dict[str, str]:
        """id -> name of the people that exist among `person_ids`."""
        ...

    def update_person(self, person_id: str, changes: Mapping[str, Any]) -> PersonRow:
        """Set `name`, `external_id` and/or `metadata`. NotFound(person_not_found);
        Conflict(external_id_taken)."""
        ...

    def delete_person(self, person_id: str) -> Removed:
        """The person, their images, faces and match history. NotFound(person_not_found)."""
        ...

    def merge_people(self, into: str, source: str) -> tuple[PersonRow, Removed]:
        """`source`'s photos, faces and match history move to `into`, and `source` is deleted, all at once.
        A photo `into` already has (same bytes) is dropped with its faces (`Removed`). The change log records
        the moved faces as removed and added again under `into`. NotFound(person_not_found) for either."""
        ...

    # Enrollment --------------------------------------------------------------------------------------------
    def save_enrollment(self, person: PersonCreate | str, images: list[NewImage]) -> tuple[PersonRow, list[FaceRow]]:
        """A new person (PersonCreate) or an existing one (id) with the given images and faces, all at once;
        clears the images' pending blob writes. NotFound(person_not_found); Conflict(external_id_taken);
        Conflict(duplicate_image) when the person already has a photo with the same sha256."""
        ...

    def image_exists(self, person_id: str, sha256: str) -> bool: ...

    def list_faces(self, person_id: str) -> list[FaceRow]:
        """Every face of a person, oldest first. NotFound(person_not_found)."""
        ...

    def get_face(self, person_id: str, face_id: int) -> tuple[FaceRow, ImageRow]:
        """NotFound(person_not_found | face_not_found)."""
        ...

    def delete_face(self, person_id: str, face_id: int) -> Removed:
        """One face; its photo too when no other face comes from it. NotFound(person_not_found |
        face_not_found)."""
        ...

    # Embeddings, re-embedding and the change log -----------------------------------------------------------
    def iter_embeddings(
        self, engine: str, model_version: str, *, ids: Collection[int] | None = None
    ) -> Iterator[Embedding]:
        """Embeddings of one engine's faces, all or those in `ids`, in id order."""
        ...

    def images_missing_embedding(self, engine: str, model_version: str) -> list[str]:
        """Ids of images with no face embedded by this engine and model version."""
        ...

    def sightings(
        self, engine: str, model_version: str, *, unknown_only: bool, after_id: int = 0, limit: int = 10_000
    ) -> list[Sighting]:
        """Match-history faces with an embedding of this engine and model version, in id order after `after_id`
        (pages of `limit`): every one, or only those that came back unknown."""
        ...

    def get_matches(self, match_ids: Collection[int]) -> list[MatchRow]:
        """These history rows (those that exist), in id order."""
        ...

    def sibling_embeddings(self, face_ids: Collection[int], engine: str, model_version: str) -> dict[int, bytes]:
        """For each of `face_ids`, the embedding another engine (`engine`, `model_version`) made of the same
        photo, where there is one (the fused engine's second descriptor)."""
        ...

    def get_image(self, image_id: str) -> ImageRow | None: ...

    def add_faces(self, faces: list[tuple[str, NewFace]]) -> list[FaceRow]:
        """Faces for existing images, as (image id, face); images deleted meanwhile are skipped."""
        ...

    def last_change(self) -> int:
        """The newest change-log sequence number (0 when empty)."""
        ...

    def changes_since(self, seq: int, *, limit: int = 10_000) -> list[FaceChange] | None:
        """Change-log entries after `seq`, oldest first; None when entries after `seq` were already trimmed
        (the caller must reload). Entries become visible in sequence order: a reader never sees seq n+1
        before seq n has committed."""
        ...

    def trim_changes(self, before: datetime) -> int:
        """Drop change-log entries older than `before`; returns how many."""
        ...

    # Match history -----------------------------------------------------------------------------------------
    def add_matches(self, matches: list[NewMatch]) -> list[int]:
        """Store matches at once; clears their crops' pending blob writes. NotFound(person_not_found) when a
        matched person was deleted meanwhile (nothing is stored then)."""
        ...

    def replace_match(self, match_id: int, match: NewMatch, *, recorded_person_id: str | None) -> str | None:
        """Overwrite a history row with a newer account of the same sighting (a video track's final snapshot and
        identity); the row keeps its id and `created_at`. `recorded_person_id`: the person this writer recorded
        in the row last; a row whose person changed since (named from history, merged) or that was rejected or
        relabelled keeps that ruling (person, distance, confidence): only the snapshot is rewritten.
        Clears the new crop's pending write and marks the old crop (returned when it differs, else None)
        pending, in the same transaction: the caller deletes that blob. NotFound(match_not_found) when the row
        is gone (purged, or its person deleted); NotFound(person_not_found) when the matched person was deleted
        meanwhile (nothing is changed then)."""
        ...

    def list_matches(self, query: MatchFilter, *, limit: int, offset: int) -> tuple[list[MatchRow], int]:
        """Newest first, and the total."""
        ...

    def get_match(self, match_id: int) -> MatchRow | None: ...

    def label_match(self, match_id: int, person_id: str) -> bool:
        """Attribute a match to a person; False when the match no longer exists."""
        ...

    def purge_matches(self, before: datetime, *, limit: int = 1000) -> Removed:
        """Up to `limit` of the oldest matches created before `before`."""
        ...

    # Blob bookkeeping --------------------------------------------------------------------------------------
    def begin_blob_writes(self, keys: list[str]) -> None:
        """Record, durably, that these blobs are about to be written."""
        ...

    def forget_pending_blobs(self, keys: list[str]) -> None: ...

    def pending_blobs(self, older_than: datetime, *, limit: int = 1000) -> list[str]:
        """Pending blob keys recorded before `older_than`."""
        ...

    def referenced_blobs(self, keys: Collection[str]) -> set[str]:
        """Which of `keys` some row points at."""
        ...

    def counts(self) -> dict[str, int]:
        """people, faces, images, matches, unknown_matches."""
        ...

    # People tools: "not this person", split, relabelling ---------------------------------------------------
    def reject_match(self, match_id: int, at: datetime) -> tuple[MatchRow, str]:
        """Record that the face of a named match is not its person: a RejectedFace (the match's embedding and
        person) is stored, the match is marked rejected and its person link cleared (it is an unknown face
        now). Returns the match and the person it is not. NotFound(match_not_found); Conflict(match_not_named)
        when the match names nobody; Conflict(no_embedding) for history kept before embeddings were."""
        ...

    def rejected_faces(self, person_ids: Collection[str], engine: str, model_version: str) -> list[RejectedFace]:
        """The rejected faces of these people, of one engine's space."""
        ...

    def split_person(
        self, source: str, face_ids: Collection[int], target: PersonCreate | str
    ) -> tuple[PersonRow, Removed]:
        """Move the photos of `face_ids` (every face of those photos, of any engine) from `source` to a new
        person (PersonCreate) or an existing one (id), all at once. A photo the target already has is dropped
        with its faces (`Removed`). The change log records the moved faces as removed and added again.
        NotFound(person_not_found | face_not_found); Conflict(external_id_taken)."""
        ...

    def relabel_matches(self, distances: Mapping[int, float], person_id: str, at: datetime) -> list[int]:
        """Name unknown history rows (match id -> the person's distance) as `person_id`, with relabelled_at =
        `at`; rows named meanwhile or rejected for this person are left. Returns the ids relabelled.
        NotFound(person_not_found)."""
        ...
