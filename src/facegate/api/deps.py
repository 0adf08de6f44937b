"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from pydantic import AfterValidator

from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload

# Integer ids are 32-bit in every store (SQLite would take more; PostgreSQL's integer would not).
MAX_ID = 2**31 - 1


def _utc_in_range(value: datetime) -> datetime:
    """Timestamps as UTC, within years every store can hold (a naive time is taken as UTC)."""
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("time out of range") from exc
    if not 1970 <= value.year <= 9998:
        raise ValueError("time must be between the years 1970 and 9998")
    return value


UtcDateTime = Annotated[datetime, AfterValidator(_utc_in_range)]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def read_upload(upload: UploadFile) -> Upload:
    """Sync endpoints run in a worker thread, so reading the spooled file here does not block the loop."""
    return Upload(filename=upload.filename or "upload", data=upload.file.read())
