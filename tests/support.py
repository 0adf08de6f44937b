"""Helpers shared by test modules: what the store holds, and uploads built from real photos."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select, update

from facegate.services import enroll as enroll_service
from facegate.services import identify as identify_service
from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload
from facegate.store.blobs import FileBlobStore
from facegate.store.models import FaceRecord, ImageRecord, MatchRecord, PendingBlob, Person
from facegate.store.repository import SQLRepository

MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def sql(rt: Runtime) -> SQLRepository:
    assert isinstance(rt.store, SQLRepository)
    return rt.store


def row_counts(rt: Runtime) -> dict[str, int]:
    """Rows per table, read straight from the SQL store (SQLite or PostgreSQL)."""
    with sql(rt).db.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Person, ImageRecord, FaceRecord, MatchRecord)
        }


def pending_blob_count(rt: Runtime) -> int:
    with sql(rt).db.session() as session:
        return session.scalar(select(func.count()).select_from(PendingBlob)) or 0


def blob_files(rt: Runtime) -> list[Path]:
    """Every file under the blob directory (temporary files included: none may be left behind)."""
    root = rt.settings.blob_path
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_stored(rt: Runtime) -> None:
    assert row_counts(rt) == {"people": 0, "images": 0, "faces": 0, "matches": 0}
    assert blob_files(rt) == []
    assert pending_blob_count(rt) == 0
    assert len(rt.index) == 0


def image_field(path: Path, field: str = "image", data: bytes | None = None) -> tuple[str, tuple[str, bytes, str]]:
    """One multipart file entry for `files=[...]`."""
    body = path.read_bytes() if data is None else data
    return field, (path.name, body, MIME.get(path.suffix.lower(), "application/octet-stream"))


def enroll(client: TestClient, paths: list[Path], *, status: int = 201, **fields: Any) -> dict[str, Any]:
    """POST /api/v1/enroll and check the status; returns the JSON body."""
    response = client.post(
        "/api/v1/enroll",
        files=[image_field(p) for p in paths],
        data={k: v for k, v in fields.items() if v is not None},
    )
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def identify(client: TestClient, path: Path, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/identify", files=[image_field(path)], data=fields)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def truncated(path: Path) -> bytes:
    """The first half of a real file: the header is intact, the pixel data is cut off."""
    data = path.read_bytes()
    return data[: len(data) // 2]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims `width` x `height` pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def jpeg_bytes(image: Image.Image, **save: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95, **save)
    return buf.getvalue()


def sideways_with_exif(path: Path) -> bytes:
    """The photo's pixels stored turned 90 degrees counter-clockwise, with EXIF Orientation 6 ("rotate 90 CW
    to display"), as phone cameras write them: a viewer that honours EXIF shows the original, upright."""
    with Image.open(path) as img:
        sideways = img.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(sideways, exif=exif.tobytes())


def blank_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A real, decodable image with no face in it."""
    rng = np.random.default_rng(0)
    noise = rng.integers(90, 110, size=(height, width, 3), dtype=np.uint8)
    return jpeg_bytes(Image.fromarray(noise))


class FailingBlobStore(FileBlobStore):
    """The real file store, except that the n-th put fails as a full disk would."""

    def __init__(self, root: Path, fail_on: int) -> None:
        super().__init__(root)
        self.fail_on = fail_on
        self.puts = 0

    def put(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self.puts += 1
        if self.puts == self.fail_on:
            raise OSError(28, "No space left on device (injected)")
        super().put(key, data)


def enroll_photos(rt: Runtime, name: str, *paths: Path) -> str:
    """Enroll `paths` as one new person through the service; their id."""
    uploads = [Upload(filename=p.name, data=p.read_bytes()) for p in paths]
    return enroll_service.enroll(rt, uploads, name=name).person.id


def identify_times(rt: Runtime, photo: Path, times: int) -> list[int]:
    """Identify a one-face `photo` `times` times; the match ids written, oldest first."""
    ids = []
    for _ in range(times):
        [face] = identify_service.identify(rt, photo.read_bytes()).faces
        assert face.match_id is not None
        ids.append(face.match_id)
    return ids


def backdate_matches(rt: Runtime, match_ids: list[int], days: float) -> None:
    with sql(rt).db.session() as session:
        when = datetime.now(UTC) - timedelta(days=days)
        session.execute(update(MatchRecord).where(MatchRecord.id.in_(match_ids)).values(created_at=when))
