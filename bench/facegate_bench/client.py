"""The facegate HTTP API as the bench calls it: enroll the gallery, identify one photo."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def _upload(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), MIME.get(path.suffix.lower(), "image/jpeg"))


def enroll_gallery(client: httpx.Client, gallery: Mapping[str, Path]) -> dict[str, Any]:
    started = time.perf_counter()
    failed: dict[str, str] = {}
    for identity, path in gallery.items():
        resp = client.post("/api/v1/enroll", data={"name": identity}, files={"image": _upload(path)})
        if resp.status_code != 201:
            failed[identity] = f"{resp.status_code} {resp.json().get('error', {}).get('code')}"
    seconds = time.perf_counter() - started
    return {"people": len(gallery), "seconds": round(seconds, 3), "failed": failed}


def identify(
    client: httpx.Client, filename: str, data: bytes, *, fields: Mapping[str, str] | None = None
) -> dict[str, Any]:
    resp = client.post("/api/v1/identify", data=fields, files={"image": (filename, data, "application/octet-stream")})
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body
