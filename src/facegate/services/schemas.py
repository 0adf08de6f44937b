"""Plain data the services take and return (pydantic models, no HTTP types)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from facegate.config import Scope
from facegate.vision.engine import Box


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


class BoxPublic(BaseModel):
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def of(cls, box: Box) -> BoxPublic:
        return cls(left=box.left, top=box.top, width=box.width, height=box.height)


class PersonPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    external_id: str | None
    metadata: dict[str, Any]
    face_count: int
    created_at: datetime
    updated_at: datetime


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    external_id: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] | None = None


class PersonMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_person_id: str = Field(
        min_length=1, max_length=36, description="The person whose photos, faces and history move in; then deleted"
    )


class PersonSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    face_ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        min_length=1, max_length=500, description="Faces to move out; every face of their photos moves with them"
    )
    name: str | None = Field(None, min_length=1, max_length=200, description="A new person to move them to")
    person_id: str | None = Field(None, min_length=1, max_length=36, description="Or an existing person")


class PeoplePage(BaseModel):
    items: list[PersonPublic]
    total: int


class FacePublic(BaseModel):
    id: int
    box: BoxPublic
    quality: float
    filename: str


class FaceDetail(BaseModel):
    """A stored face of a person: where it is in its photo, how good it is, which engine embedded it."""

    id: int
    image_id: str
    box: BoxPublic
    quality: float
    detector_score: float
    sharpness: float
    engine: str
    model_version: str
    created_at: datetime
    auto: bool = Field(False, description="Added by identify's safe auto-enrollment (removable like any face)")


class FacesPage(BaseModel):
    items: list[FaceDetail]
    total: int


class Rejection(BaseModel):
    filename: str
    reason: str
    message: str


# Example answers, as `POST /api/v1/enroll` and `/identify` gave them for the README's requests (shown in the
# OpenAPI document by api/openapi.py).
_PERSON_ID = "5b0f3a2e-9c41-4d7e-8a63-2f1d0c9e7b14"
ENROLL_EXAMPLE: dict[str, Any] = {
    "person": {
        "id": _PERSON_ID,
        "name": "Colin Powell",
        "external_id": None,
        "metadata": {"team": "blue"},
        "face_count": 2,
        "created_at": "2026-11-25T09:14:07.512000Z",
        "updated_at": "2026-11-25T09:14:07.512000Z",
    },
    "faces": [
        {"id": 1, "box": {"left": 87, "top": 62, "width": 79, "height": 101}, "quality": 0.93, "filename": "1.jpg"},
        {"id": 2, "box": {"left": 91, "top": 70, "width": 72, "height": 93}, "quality": 0.88, "filename": "2.jpg"},
    ],
    "rejected": [],
}
IDENTIFY_EXAMPLE: dict[str, Any] = {
    "request_id": "c4e8d2a1-7f3b-4b9e-9d05-6a1e2f8c3b70",
    "width": 2000,
    "height": 1428,
    "threshold": 0.56,
    "faces": [
        {
            "box": {"left": 1140, "top": 371, "width": 184, "height": 234},
            "quality": 0.92,
            "match": {"person_id": _PERSON_ID, "name": "Barack Obama", "distance": 0.22, "confidence": 0.99},
            "candidates": [
                {"person_id": _PERSON_ID, "name": "Barack Obama", "distance": 0.22, "confidence": 0.99},
                {
                    "person_id": "e27a9c10-3b5d-4f86-b1c2-8d4e6f0a9b35",
                    "name": "Joe Biden",
                    "distance": 0.82,
                    "confidence": 0.02,
                },
            ],
            "match_id": 2,
            "reason": None,
            "decided_by": "opencv",
        },
        {
            "box": {"left": 402, "top": 388, "width": 151, "height": 197},
            "quality": 0.87,
            "match": None,
            "candidates": [
                {
                    "person_id": "e27a9c10-3b5d-4f86-b1c2-8d4e6f0a9b35",
                    "name": "Joe Biden",
                    "distance": 0.71,
                    "confidence": 0.06,
                }
            ],
            "match_id": 3,
            "reason": "above_threshold",
            "decided_by": "opencv",
        },
    ],
}


class EnrollResult(BaseModel):
    person: PersonPublic
    faces: list[FacePublic]
    rejected: list[Rejection] = Field(description="Photos not enrolled, each with a reason code (e.g. `no_face`)")


UnknownReason = Literal["no_candidate", "above_threshold", "low_quality", "rejected_lookalike"]


class Candidate(BaseModel):
    person_id: str
    name: str
    distance: float
    confidence: float
    rejected_lookalike: bool = Field(
        False,
        description='The face is closer to a face a user rejected for this person ("not this person") than to '
        "the person: not named as them, whatever the distance",
    )


class IdentifiedFace(BaseModel):
    box: BoxPublic
    quality: float
    match: Candidate | None = Field(description="The best candidate if within the threshold; null for an unknown face")
    candidates: list[Candidate] = Field(description="Nearest first, one per person, whether or not they matched")
    match_id: int | None = Field(None, description="This face's entry in match history")
    reason: UnknownReason | None = Field(
        None,
        description="Why the face is unknown (null when matched): no_candidate (nobody enrolled to compare with), "
        "above_threshold (the nearest person, first in candidates, is farther than the threshold), "
        "low_quality (no match, and the face is too small, blurred or faint to be sure: try a better photo), "
        "rejected_lookalike (within the threshold only of people it is a rejected lookalike of)",
    )
    decided_by: str = Field(
        description="Which score decided: the engine's name, or 'fusion' when the second descriptor was fused in"
    )


class IdentifyResult(BaseModel):
    request_id: str
    width: int
    height: int
    threshold: float
    faces: list[IdentifiedFace]


class CompareResult(BaseModel):
    same: bool
    distance: float
    confidence: float
    threshold: float
    decided_by: str = Field(
        description="Which score was held against the threshold: the engine's name, or 'fusion' when the second "
        "descriptor was fused in (distance is then the fused distance, on the primary engine's scale)"
    )
    box_a: BoxPublic
    box_b: BoxPublic


class MatchPublic(BaseModel):
    id: int
    request_id: str
    source: str
    created_at: datetime
    person_id: str | None
    name: str | None
    distance: float | None
    confidence: float | None
    threshold: float
    box: BoxPublic
    quality: float
    candidates: list[Candidate]
    has_crop: bool
    rejected: bool = Field(False, description="A user said this face is not the person it was matched to")
    relabelled: bool = Field(False, description="Named afterwards by relabelling (it came back unknown)")


class MatchesPage(BaseModel):
    items: list[MatchPublic]
    total: int


class SightingPublic(BaseModel):
    match: MatchPublic = Field(description="The history entry: an identify that came back unknown")
    distance: float = Field(description="The person's distance to that face (the identify rule, primary engine)")


class SightingsPage(BaseModel):
    items: list[SightingPublic] = Field(description="Nearest first")
    threshold: float
    searched: int = Field(description="Unknown faces in history with an embedding of the current engine")


class HistorySighting(BaseModel):
    """A face in match history near a searched face."""

    match_id: int
    distance: float = Field(description="Between the searched face and this one (the engine's metric)")
    created_at: datetime
    person_id: str | None = Field(description="Who identify named (or a relabel named); null for an unknown face")
    name: str | None
    source: str
    crop_url: str | None = Field(description="The face's crop, when kept")


class SearchFace(BaseModel):
    box: BoxPublic
    candidates: list[Candidate] = Field(description="Enrolled people, nearest first, as identify gives them")
    sightings: list[HistorySighting] = Field(description="Past faces within the threshold, nearest first")


class SearchResult(BaseModel):
    threshold: float
    searched: int = Field(description="History faces compared (those with an embedding of the current engine)")
    faces: list[SearchFace]


class SuggestionFace(BaseModel):
    match_id: int
    created_at: datetime
    source: str
    crop_url: str | None = Field(description="The face's crop (JPEG), when one was kept")


class Representative(BaseModel):
    match_id: int
    crop_url: str | None


class SuggestionPublic(BaseModel):
    """Unknown faces that look like one person seen again and again: a person to enroll, or to dismiss."""

    id: str
    size: int = Field(description="Faces in the group")
    sightings: int = Field(description="Photos or video tracks they come from")
    first_seen: datetime
    last_seen: datetime
    sources: list[str] = Field(description="Where they were seen (api, video:<stream>, ...)")
    representatives: list[Representative] = Field(description="A few faces, the best by quality and variety")


class SuggestionDetail(SuggestionPublic):
    faces: list[SuggestionFace] = Field(description="Every face in the group, oldest first")


class SuggestionsPage(BaseModel):
    items: list[SuggestionPublic] = Field(description="Most recently seen first")
    total: int


class SuggestionEnroll(BaseModel):
    """Either a new person's name or an existing person's id."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200, examples=["New Colleague"])
    person_id: str | None = Field(None, max_length=36)


class SuggestionEnrolled(BaseModel):
    person: PersonPublic
    faces_added: int = Field(description="Faces enrolled from the group (its best by quality and variety)")


class KeyPublic(BaseModel):
    """An API key as listed: never the key itself."""

    id: str
    name: str
    scopes: list[Scope]
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    expires_at: datetime | None = Field(None, description="Optional; the key stops working then")


class KeyCreated(BaseModel):
    key: KeyPublic
    secret: str = Field(description="The API key. Shown only in this response: store it now.")


class AuditPublic(BaseModel):
    id: int
    at: datetime
    action: str
    key_id: str | None
    address: str | None
    target: str | None
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditPublic]
    total: int


class HealthStatus(BaseModel):
    status: Literal["ok"]


class ReadyStatus(BaseModel):
    status: Literal["ready"]
    parts: dict[str, bool] = Field(description="Each part (store, blobs, engine, index, ...) and whether it is usable")


class EngineSummary(BaseModel):
    name: str
    model_version: str
    metric: str
    threshold: float
    workers: int


class StoreCounts(BaseModel):
    people: int
    faces: int
    images: int
    matches: int
    unknown_matches: int


class IndexSummary(BaseModel):
    type: str
    faces: int


class RouteLatency(BaseModel):
    count: int
    mean_ms: float


class StreamTelemetry(BaseModel):
    """One stream in the telemetry summary (the same values as its /metrics gauges)."""

    id: str
    name: str
    state: str
    fps: float
    lag_seconds: float
    frames: int
    dropped_frames: int
    worker: str | None


class TelemetrySummary(BaseModel):
    """What /api/v1/telemetry answers: version, uptime, engine, stored counts, counters and latencies."""

    version: str
    uptime_seconds: float
    engine: EngineSummary
    store: StoreCounts
    index: IndexSummary
    counters: dict[str, dict[str, float]] = Field(
        description="Counter values by metric, then by label set (`key=value,...`, or `all`)"
    )
    latency: dict[str, RouteLatency] = Field(description="Requests and mean latency per route template")
    streams: list[StreamTelemetry] = Field(
        default_factory=list, description="Video streams: state, fps, lag and dropped frames (as in /metrics)"
    )


class StreamCreate(BaseModel):
    """A video stream to run: a file path, an rtsp/http(s) URL, or a camera index ("0")."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=2000, examples=["rtsp://camera.local:554/stream1"])
    name: str = Field(min_length=1, max_length=200, examples=["front door"])
    sample_fps: float | None = Field(None, gt=0.0, le=60.0, description="Frames analysed per second at most")
    loop: bool = Field(False, description="Play a file source again from the start when it ends")


class StreamUpdate(BaseModel):
    """A change to a stream: `enabled: false` stops it (wherever it runs) until it is enabled again."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool = Field(description="Run the stream (true) or keep it stopped (false)")


class TrackPublic(BaseModel):
    """A person currently in view of a stream (announced by `appeared`, not yet `left`)."""

    track: str
    box: BoxPublic
    person_id: str | None
    name: str | None
    distance: float | None


class StreamPublic(BaseModel):
    """A stream and its live status as reported by the process running it (`worker`), at `status_at`.
    state: pending (not started yet), waiting (every slot of its worker busy), starting, running, reconnecting,
    ended (a file that was not looped), failed (restarted with backoff; `error` says why), stale (its worker
    has not reported for a while: dead, or the stream is moving to another worker), disabled (stopped by
    `PATCH {"enabled": false}`: no fps, lag or tracks; frames, error and worker as last reported)."""

    id: str
    name: str
    source: str
    sample_fps: float | None
    loop: bool
    enabled: bool
    state: str
    fps: float
    lag_seconds: float
    frames: int
    dropped_frames: int
    error: str | None
    worker: str | None
    status_at: datetime | None
    tracks: list[TrackPublic]
    created_at: datetime


class StreamsPage(BaseModel):
    items: list[StreamPublic]
