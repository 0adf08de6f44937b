"""Annotated dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile

from facegate.services.runtime import Runtime
from facegate.services.schemas import Upload

# Integer ids are 32-bit in every store (SQLite would take more; PostgreSQL's integer would not).
MAX_ID = 2**31 - 1


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def read_upload(upload: UploadFile) -> Upload:
    """Sync endpoints run in a worker thread, so reading the spooled file here does not block the loop."""
    return Upload(filename=upload.filename or "upload", data=upload.file.read())
