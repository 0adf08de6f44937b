"""Plain data the services take and return (pydantic models, no HTTP types)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class FacesPage(BaseModel):
    items: list[FaceDetail]
    total: int


class Rejection(BaseModel):
    filename: str
    reason: str
    message: str


class EnrollResult(BaseModel):
    person: PersonPublic
    faces: list[FacePublic]
    rejected: list[Rejection]


class Candidate(BaseModel):
    person_id: str
    name: str
    distance: float
    confidence: float


class IdentifiedFace(BaseModel):
    box: BoxPublic
    quality: float
    match: Candidate | None
    candidates: list[Candidate]
    match_id: int | None = None


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


class MatchesPage(BaseModel):
    items: list[MatchPublic]
    total: int


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
