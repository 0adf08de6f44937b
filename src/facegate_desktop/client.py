"""The desktop app's HTTP client: the public v1 API, its JSON answers as small dataclasses, its errors as
ApiError. Blocking (httpx): the window calls it from worker threads, never from the GUI thread."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

# A busy engine answers 503 with Retry-After: a well-behaved client waits and tries again, a few times.
BUSY_RETRIES = 3
MAX_RETRY_WAIT = 5.0


class ApiError(Exception):
    """A request that did not succeed: the server's error code, or one of ours when there was no answer
    (server_unreachable, server_timeout, invalid_url, bad_answer)."""

    def __init__(self, code: str, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Photo:
    """A photo to send: from a file or a camera snapshot."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Box:
        return cls(int(raw["left"]), int(raw["top"]), int(raw["width"]), int(raw["height"]))


@dataclass(frozen=True)
class Candidate:
    person_id: str
    name: str
    distance: float
    confidence: float

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Candidate:
        return cls(str(raw["person_id"]), str(raw["name"]), float(raw["distance"]), float(raw["confidence"]))


@dataclass(frozen=True)
class IdentifiedFace:
    box: Box
    match: Candidate | None
    candidates: list[Candidate]
    reason: str | None  # why the face is unknown; None when matched


@dataclass(frozen=True)
class Identification:
    width: int  # of the photo as the server saw it (EXIF orientation applied): the boxes' frame
    height: int
    faces: list[IdentifiedFace]


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    face_count: int
    created_at: str


@dataclass(frozen=True)
class PeoplePage:
    items: list[Person]
    total: int


@dataclass(frozen=True)
class EnrolledFace:
    filename: str
    box: Box
    quality: float


@dataclass(frozen=True)
class RejectedPhoto:
    filename: str
    reason: str
    message: str


@dataclass(frozen=True)
class Enrollment:
    person: Person
    faces: list[EnrolledFace]
    rejected: list[RejectedPhoto]


@dataclass(frozen=True)
class KeyInfo:
    name: str
    scopes: list[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _person(raw: dict[str, Any]) -> Person:
    return Person(str(raw["id"]), str(raw["name"]), int(raw.get("face_count", 0)), str(raw.get("created_at", "")))


class FacegateClient:
    """One server and one key. Thread-safe: tasks on several worker threads may share it."""

    def __init__(self, url: str, key: str, *, timeout: float = 120.0) -> None:
        self.url = url.strip().rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"X-API-Key": key.strip()},
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    def close(self) -> None:
        self._http.close()

    def key_info(self) -> KeyInfo:
        body = self._request("GET", "/api/v1/keys/me")
        return KeyInfo(str(body["name"]), [str(s) for s in body["scopes"]])

    def identify(self, photo: Photo) -> Identification:
        body = self._request("POST", "/api/v1/identify", files=[("image", _upload(photo))])
        faces = [
            IdentifiedFace(
                box=Box.of(f["box"]),
                match=Candidate.of(f["match"]) if f.get("match") else None,
                candidates=[Candidate.of(c) for c in f.get("candidates", [])],
                reason=f.get("reason"),
            )
            for f in body["faces"]
        ]
        return Identification(int(body["width"]), int(body["height"]), faces)

    def enroll(self, name: str, photos: Sequence[Photo]) -> Enrollment:
        files = [("image", _upload(p)) for p in photos]
        body = self._request("POST", "/api/v1/enroll", data={"name": name}, files=files)
        return Enrollment(
            person=_person(body["person"]),
            faces=[EnrolledFace(str(f["filename"]), Box.of(f["box"]), float(f["quality"])) for f in body["faces"]],
            rejected=[RejectedPhoto(str(r["filename"]), str(r["reason"]), str(r["message"])) for r in body["rejected"]],
        )

    def people(self, *, name: str = "", limit: int = 50, offset: int = 0) -> PeoplePage:
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if name.strip():
            params["name"] = name.strip()
        body = self._request("GET", "/api/v1/people", params=params)
        return PeoplePage([_person(p) for p in body["items"]], int(body["total"]))

    def delete_person(self, person_id: str) -> None:
        self._request("DELETE", f"/api/v1/people/{person_id}")

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(BUSY_RETRIES + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise ApiError("invalid_url", f"Not a server address: {self.url!r} ({exc})") from exc
            except httpx.TimeoutException as exc:
                code = "server_unreachable" if isinstance(exc, httpx.ConnectTimeout) else "server_timeout"
                raise ApiError(code, str(exc) or type(exc).__name__) from exc
            except httpx.TransportError as exc:
                raise ApiError("server_unreachable", str(exc) or type(exc).__name__) from exc
            retry_after = _retry_after(response)
            if response.status_code == 503 and retry_after is not None and attempt < BUSY_RETRIES:
                time.sleep(min(retry_after, MAX_RETRY_WAIT))
                continue
            break
        if response.status_code >= 400:
            raise _error(response, retry_after)
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError("bad_answer", f"{self.url} did not answer like a facegate server") from exc


def _upload(photo: Photo) -> tuple[str, bytes]:
    # No content type: the server reads the image's own header, whatever the file name says.
    return (photo.filename, photo.data)


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _error(response: httpx.Response, retry_after: float | None) -> ApiError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", response.text[:200] or response.reason_phrase
    return ApiError(code, message, response.status_code, retry_after)
