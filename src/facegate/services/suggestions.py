"""Suggested people: unknown faces of match history grouped into people seen again and again.

`Grouping` keeps the unknown faces of the engine's embedding space in memory (`facegate.services.grouping`) and
the store's groups in step with it: `catch_up` places the faces recorded since its last call (the server runs it
every `suggestions.catch_up_seconds`, off identify's path), `regroup` groups them all anew (every
`suggestions.regroup_seconds`, and `facegate suggestions regroup`). The store is the truth: when another process
changed groups (a dismissal, an enrollment, a regroup elsewhere), the next call reloads from it. Of several API
replicas on one store only one groups (the store's `lead_grouping` lock); the others take over when it goes.

A group that reaches `suggestions.notify_after` sightings is announced once with `unknown_person_recurring`.
Listing, dismissing and enrolling need only the store (and, to enroll, the engine).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from facegate.config import Settings, SuggestionSettings
from facegate.errors import InvalidInput, NotFound, Unprocessable
from facegate.events.base import Event
from facegate.services import enroll as enroll_service
from facegate.services.accuracy import distance_matrix
from facegate.services.calibration import calibrated_distance
from facegate.services.grouping import FaceGrouper, GroupingParams
from facegate.services.people import to_public as person_public
from facegate.services.runtime import Runtime, StoreRuntime
from facegate.services.schemas import (
    Representative,
    SuggestionDetail,
    SuggestionEnrolled,
    SuggestionFace,
    SuggestionPublic,
    SuggestionsPage,
    Upload,
)
from facegate.store.base import GroupingUpdate, MatchRow, Repository, SuggestionFilter, SuggestionRow
from facegate.vision.engine import EngineInfo
from facegate.vision.factory import build_engine

log = logging.getLogger(__name__)

PAGE = 10_000
# Faces of a group weighed for representatives and enrollment: its best by quality (variety is chosen among them).
CANDIDATES = 64


def grouping_distance(settings: SuggestionSettings, info: EngineInfo) -> float:
    """`settings.distance`, or the calibrated distance at which two different people's faces fall with probability
    `false_match_rate`."""
    if settings.distance is not None:
        return settings.distance
    return calibrated_distance(info, settings.false_match_rate)


def engine_space(settings: Settings) -> EngineInfo:
    """The configured engine's embedding space, without starting the engine (for commands that use the store)."""
    return build_engine(settings.engine).info


def grouping_params(settings: SuggestionSettings, info: EngineInfo) -> GroupingParams:
    return GroupingParams(distance=grouping_distance(settings, info), min_faces=settings.min_faces)


class Grouping:
    """The unknown faces of one embedding space, grouped; one per process that groups (the server, the CLI)."""

    def __init__(
        self,
        store: Repository,
        info: EngineInfo,
        settings: SuggestionSettings,
        publish: Callable[[Event], None] | None = None,
        *,
        exclusive: bool = False,
    ) -> None:
        self._store = store
        self._exclusive = exclusive
        self._info = info
        self._settings = settings
        self._params = grouping_params(settings, info)
        self._publish = publish
        self._lock = threading.Lock()
        self._grouper: FaceGrouper | None = None
        self._cursor = 0  # the newest match id placed
        self._generation = -1  # the store's group generation our view matches
        self._dismissed: set[str] = set()

    @classmethod
    def of(cls, rt: Runtime) -> Grouping:
        """The server's grouping: exclusive, so that of several replicas on one store only one groups."""
        return cls(rt.store, rt.engine.info, rt.settings.suggestions, rt.events.publish, exclusive=True)

    def catch_up(self) -> int:
        """Place the unknown faces recorded since the last call (the first call: all of them); returns how many.
        An exclusive grouping does nothing (0) while another process leads."""
        with self._lock, self._reload_on_failure():
            if not self._leads():
                return 0
            read = 0
            if self._grouper is None:  # the first call: everything so far, grouped at once
                self._load()
                read = len(self._require())
                self._save(self._require().regroup(self._dismissed))
            elif self._store.suggestions.generation() != self._generation:
                self._load(keep_cursor=True)
            grouper = self._require()
            while page := self._store.suggestions.unknown_faces(
                self._info.name, self._info.model_version, after_id=self._cursor, limit=PAGE
            ):
                grouper.add(
                    [f.match_id for f in page],
                    [f.request_id for f in page],
                    _vectors([f.embedding for f in page], self._info.dim),
                )
                self._cursor = page[-1].match_id
                read += len(page)
                changes = grouper.assign([f.match_id for f in page])
                if changes:
                    self._save(dict(changes))
            if read:
                self._notify()
            return read

    def regroup(self) -> int:
        """Group every unknown face anew (from the store); returns how many faces changed group. An exclusive
        grouping does nothing (0) while another process leads."""
        with self._lock, self._reload_on_failure():
            if not self._leads():
                return 0
            self._load()
            changes = self._require().regroup(self._dismissed)
            self._save(changes, always=True)  # also settles faces named since, and groups left empty
            self._notify()
            return len(changes)

    # Internals -----------------------------------------------------------------------------------------------
    def _leads(self) -> bool:
        if not self._exclusive or self._store.suggestions.lead_grouping():
            return True
        # Another replica groups: keep no copy of the faces (reloaded from the store if this one leads later).
        self._grouper = None
        return False

    @contextlib.contextmanager
    def _reload_on_failure(self) -> Iterator[None]:
        """A pass that failed part way (e.g. the store busy when saving) leaves the in-memory grouping ahead of
        the store: placed faces the store never heard of, never saved later. Start over from the store then."""
        try:
            yield
        except BaseException:
            self._grouper = None
            raise

    def _require(self) -> FaceGrouper:
        assert self._grouper is not None
        return self._grouper

    def _load(self, *, keep_cursor: bool = False) -> None:
        """Every unknown face of this space with its group, from the store. With `keep_cursor`, the faces after
        our cursor are left for `catch_up` to place."""
        cursor = self._cursor
        self._generation = self._store.suggestions.generation()
        grouper = FaceGrouper(self._info.dim, self._info.metric, self._params)
        dismissed: set[str] = set()
        after = 0
        while page := self._store.suggestions.unknown_faces(
            self._info.name, self._info.model_version, after_id=after, limit=PAGE
        ):
            if keep_cursor:
                page = [f for f in page if f.match_id <= cursor]
                if not page:
                    break
            grouper.add(
                [f.match_id for f in page],
                [f.request_id for f in page],
                _vectors([f.embedding for f in page], self._info.dim),
                [f.suggestion_id for f in page],
            )
            dismissed |= {f.suggestion_id for f in page if f.dismissed and f.suggestion_id}
            after = page[-1].match_id
        self._grouper = grouper
        self._dismissed = dismissed
        self._cursor = cursor if keep_cursor else after

    def _save(self, changes: dict[int, str | None], *, always: bool = False) -> None:
        if not changes and not always:
            return
        generation = self._store.suggestions.save_grouping(
            GroupingUpdate(self._info.name, self._info.model_version, changes)
        )
        # Another process wrote groups since our view was read: reload before the next placement.
        self._generation = generation if generation == self._generation + 1 else -1

    def _notify(self) -> None:
        if self._publish is None:
            return
        query = SuggestionFilter(
            self._info.name,
            self._info.model_version,
            min_faces=self._params.min_faces,
            min_sightings=self._settings.notify_after,
            unnotified_only=True,
        )
        rows, _ = self._store.suggestions.list_suggestions(query, limit=100, offset=0)
        for row in rows:
            if self._store.suggestions.mark_notified(row.id, datetime.now(UTC)):
                self._publish(
                    Event(
                        "unknown_person_recurring",
                        {
                            "suggestion_id": row.id,
                            "size": row.size,
                            "sightings": row.sightings,
                            "first_seen": row.first_seen.isoformat(),
                            "last_seen": row.last_seen.isoformat(),
                        },
                    )
                )


def _vectors(embeddings: list[bytes], dim: int) -> npt.NDArray[np.float32]:
    return np.frombuffer(b"".join(embeddings), dtype="<f4").reshape(len(embeddings), dim)


# Reading, dismissing, enrolling (the store alone, and the engine to enroll) ----------------------------------------
def _crop_url(match: MatchRow) -> str | None:
    return f"/api/v1/matches/{match.id}/crop" if match.crop_key else None


def _space(rt: StoreRuntime, info: EngineInfo) -> SuggestionFilter:
    return SuggestionFilter(info.name, info.model_version, min_faces=rt.settings.suggestions.min_faces)


def best_faces(rt: StoreRuntime, members: list[MatchRow], count: int, metric: str) -> list[MatchRow]:
    """Up to `count` faces with crops, chosen for quality and variety: the best face first, then each time the
    face whose quality times distance to the nearest one already chosen is largest (a near-duplicate of a
    chosen face scores ~0)."""
    pool = sorted((m for m in members if m.crop_key), key=lambda m: (-m.quality, m.id))[:CANDIDATES]
    if len(pool) <= count:
        return pool
    vectors = rt.store.suggestions.embeddings([m.id for m in pool])
    pool = [m for m in pool if m.id in vectors]
    if len(pool) <= count:
        return pool
    matrix = np.stack([np.frombuffer(vectors[m.id], dtype="<f4") for m in pool]).astype(np.float64)
    distances = distance_matrix("cosine" if metric == "cosine" else "euclidean", matrix, matrix)
    quality = np.asarray([max(m.quality, 1e-3) for m in pool])
    chosen = [0]
    nearest = distances[0].copy()
    while len(chosen) < count:
        score = quality * nearest
        score[chosen] = -1.0
        pick = int(np.argmax(score))
        chosen.append(pick)
        nearest = np.minimum(nearest, distances[pick])
    return [pool[i] for i in chosen]


def _public(rt: StoreRuntime, row: SuggestionRow, members: list[MatchRow], metric: str) -> SuggestionPublic:
    picked = best_faces(rt, members, rt.settings.suggestions.representatives, metric)
    return SuggestionPublic(
        id=row.id,
        size=row.size,
        sightings=row.sightings,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        sources=row.sources,
        representatives=[Representative(match_id=m.id, crop_url=_crop_url(m)) for m in picked],
    )


def list_suggestions(rt: StoreRuntime, info: EngineInfo, *, limit: int, offset: int) -> SuggestionsPage:
    rows, total = rt.store.suggestions.list_suggestions(_space(rt, info), limit=limit, offset=offset)
    items = [_public(rt, row, _members(rt, row.id), info.metric) for row in rows]
    return SuggestionsPage(items=items, total=total)


def _members(rt: StoreRuntime, suggestion_id: str) -> list[MatchRow]:
    return rt.store.get_matches(rt.store.suggestions.members(suggestion_id))


def _require(rt: StoreRuntime, suggestion_id: str) -> SuggestionRow:
    row = rt.store.suggestions.get(suggestion_id)
    if row is None or row.dismissed_at is not None:
        raise NotFound(f"No suggestion with id {suggestion_id}.", code="suggestion_not_found")
    return row


def get_suggestion(rt: StoreRuntime, info: EngineInfo, suggestion_id: str) -> SuggestionDetail:
    row = _require(rt, suggestion_id)
    members = _members(rt, suggestion_id)
    public = _public(rt, row, members, info.metric)
    faces = [
        SuggestionFace(match_id=m.id, created_at=m.created_at, source=m.source, crop_url=_crop_url(m)) for m in members
    ]
    return SuggestionDetail(**public.model_dump(), faces=faces)


def dismiss(rt: StoreRuntime, suggestion_id: str) -> None:
    """The group is hidden for good: its faces, and new faces that join it, never make a suggestion again."""
    _require(rt, suggestion_id)
    if not rt.store.suggestions.dismiss(suggestion_id, datetime.now(UTC)):
        raise NotFound(f"No suggestion with id {suggestion_id}.", code="suggestion_not_found")


def enroll(
    rt: Runtime, suggestion_id: str, *, name: str | None = None, person_id: str | None = None
) -> SuggestionEnrolled:
    """Enroll the group's best faces (their crops) as a new person (`name`) or onto `person_id`; every face of the
    group becomes a sighting of that person in match history, and the suggestion goes."""
    if (name is None) == (person_id is None):
        raise InvalidInput("Give either name or person_id.", code="name_or_person_id")
    _require(rt, suggestion_id)
    members = _members(rt, suggestion_id)
    uploads: list[Upload] = []
    for match in best_faces(rt, members, rt.settings.suggestions.enroll_faces, rt.engine.info.metric):
        try:
            data = rt.blobs.get(match.crop_key or "")
        except NotFound:
            continue
        if data:
            uploads.append(Upload(f"match-{match.id}.jpg", data))
    if not uploads:
        raise Unprocessable("No face of this suggestion has a stored crop to enroll.", code="no_crops")
    result = enroll_service.enroll(rt, uploads, name=name, person_id=person_id)
    rt.store.suggestions.resolve(suggestion_id, result.person.id)
    person = rt.store.get_person(result.person.id)
    return SuggestionEnrolled(person=person_public(person) if person else result.person, faces_added=len(result.faces))
