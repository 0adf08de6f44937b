"""Annotated dependencies shared by the routers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from pydantic import AfterValidator, BeforeValidator

from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload

# Integer ids are 32-bit in every store (SQLite would take more; PostgreSQL's integer would not).
MAX_ID = 2**31 - 1

# Distance cut-offs given by clients. The floor keeps the confidence curve's width (threshold / 10) above zero:
# a subnormal threshold such as 5e-324 made it 0.0, and identify and compare divided by zero (schemathesis).
MIN_THRESHOLD = 1e-6
MAX_THRESHOLD = 2.0


def _utc_in_range(value: datetime) -> datetime:
    """Timestamps as UTC, within years every store can hold (a naive time is taken as UTC)."""
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("time out of range") from exc
    if not 1970 <= value.year <= 9998:
        raise ValueError("time must be between the years 1970 and 9998")
    return value


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    """A time is RFC 3339 text, as the OpenAPI document says (`format: date-time`). Pydantic would also read
    a number as Unix seconds: `until=0.5` silently meant 1970-01-01T00:00:00.5Z (found by schemathesis)."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("time must be an RFC 3339 date-time, e.g. 2026-11-25T09:14:07Z")
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_utc_in_range)]


async def get_runtime(request: Request) -> Runtime:
    """Async although it does no I/O: FastAPI runs a plain `def` dependency in a worker thread, one more thread
    hop on every request for an attribute read."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def read_upload(upload: UploadFile) -> Upload:
    """Sync endpoints run in a worker thread, so reading the spooled file here does not block the loop."""
    return Upload(filename=upload.filename or "upload", data=upload.file.read())
