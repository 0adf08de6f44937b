"""`facegate bench`: identify throughput and latency of a running facegate server, measured from the client's
side with the user's own photos. Plain HTTP (the standard library's client, one keep-alive connection per
client thread), nothing else: the harness that compares engines and tools lives in the repository's bench/.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from facegate.errors import FacegateError, InvalidInput, Unavailable

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def photos_in(folder: Path) -> list[Path]:
    """Every photo under `folder` (sub-folders too), in a stable order."""
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder.", code="not_a_folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)


def _multipart(fields: dict[str, str], files: Sequence[tuple[str, Path]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files:
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        )
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class _Client:
    """One keep-alive connection to the server; reconnects once when the server closed it."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"{url} is not an http:// or https:// URL.", code="invalid_url")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"X-API-Key": api_key} if api_key else {}
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self._timeout)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        headers = {**self._headers, "Content-Type": content_type}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                self._conn.request("POST", self._prefix + path, body=body, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _error_code(status: int, body: bytes) -> str:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return f"{status} {code}" if code else str(status)


@dataclass
class EnrollSummary:
    people: int = 0
    faces: int = 0
    rejected_photos: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # person folder -> status and error code
    seconds: float = 0.0


def enroll_gallery(url: str, gallery: Path, *, api_key: str | None, timeout: float = 120.0) -> EnrollSummary:
    """Each sub-folder of `gallery` is one new person, named after it, enrolled from all its photos at once."""
    if not gallery.is_dir():
        raise InvalidInput(f"{gallery} is not a folder.", code="not_a_folder")
    summary = EnrollSummary()
    client = _Client(url, api_key, timeout)
    started = time.perf_counter()
    try:
        for folder in sorted(p for p in gallery.iterdir() if p.is_dir()):
            photos = photos_in(folder)
            if not photos:
                continue
            body, content_type = _multipart({"name": folder.name}, [("image", p) for p in photos])
            status, answer = _send(client, "/api/v1/enroll", body, content_type)
            if status == 201:
                result = json.loads(answer)
                summary.people += 1
                summary.faces += len(result.get("faces", []))
                summary.rejected_photos += len(result.get("rejected", []))
            else:
                summary.failed[folder.name] = _error_code(status, answer)
    finally:
        client.close()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _send(client: _Client, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    try:
        return client.post(path, body, content_type)
    except OSError as exc:
        raise Unavailable(f"Could not reach the server: {exc}", code="server_unreachable") from exc


@dataclass
class IdentifyBench:
    url: str
    photos: int
    requests: int
    concurrency: int
    seconds: float
    images_per_s: float  # answered with 200, per second of wall time
    latency_ms: dict[str, float]  # of 200 answers: p50, p95, p99, mean, max
    statuses: dict[str, int]  # "200", "503 engine_busy", ...
    faces: int  # faces found, over every 200 answer
    matched: int  # faces given a name

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cycle(photos: Sequence[Path], count: int) -> Iterator[Path]:
    for i in range(count):
        yield photos[i % len(photos)]


def identify_bench(
    url: str,
    photos: Sequence[Path],
    *,
    api_key: str | None,
    concurrency: int = 2,
    requests: int = 0,
    warmup: int = 0,
    timeout: float = 120.0,
) -> IdentifyBench:
    """`requests` identify requests (0: each photo once), cycling through `photos`, from `concurrency` client
    threads that each wait for an answer before sending the next. `warmup` requests go first, untimed.
    Photos are read into memory first, so the disk is not measured."""
    if not photos:
        raise InvalidInput("No photos to send (.jpg, .jpeg, .png, .webp, .bmp, .tif).", code="no_photos")
    count = requests or len(photos)
    bodies = {p: _multipart({}, [("image", p)]) for p in photos[: max(count, warmup)]}
    local = threading.local()
    clients: list[_Client] = []
    lock = threading.Lock()

    def one(path: Path) -> tuple[int, float, bytes]:
        client: _Client | None = getattr(local, "client", None)
        if client is None:
            client = local.client = _Client(url, api_key, timeout)
            with lock:
                clients.append(client)
        body, content_type = bodies[path]
        started = time.perf_counter()
        status, answer = _send(client, "/api/v1/identify", body, content_type)
        return status, 1000 * (time.perf_counter() - started), answer

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as threads:
            if warmup:
                list(threads.map(one, _cycle(photos, warmup)))
            started = time.perf_counter()
            answers = list(threads.map(one, _cycle(photos, count)))
            seconds = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    statuses: Counter[str] = Counter()
    times: list[float] = []
    faces = matched = 0
    for status, ms, answer in answers:
        if status == 200:
            times.append(ms)
            found = json.loads(answer).get("faces", [])
            faces += len(found)
            matched += sum(1 for face in found if face.get("match"))
            statuses["200"] += 1
        else:
            statuses[_error_code(status, answer)] += 1
    if any(key.split()[0] == "401" for key in statuses):
        raise FacegateError(
            "The server refused the key (401): pass a key with the identify scope as --api-key.", code="unauthorized"
        )
    return IdentifyBench(
        url=url,
        photos=len(photos),
        requests=count,
        concurrency=concurrency,
        seconds=round(seconds, 3),
        images_per_s=round(len(times) / seconds, 2) if seconds else 0.0,
        latency_ms=_latency(times),
        statuses=dict(statuses),
        faces=faces,
        matched=matched,
    )


def _latency(times: Sequence[float]) -> dict[str, float]:
    if not times:
        return {}
    # quantiles needs two values; one value is every percentile of itself.
    cuts = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else [times[0]] * 99
    return {
        "p50": round(cuts[49], 1),
        "p95": round(cuts[94], 1),
        "p99": round(cuts[98], 1),
        "mean": round(statistics.fmean(times), 1),
        "max": round(max(times), 1),
    }
