"""The audit log, for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from facegate.api.auth import AdminKey
from facegate.api.deps import MAX_ID, RuntimeDep, UtcDateTime
from facegate.services import audit
from facegate.services.schemas import AuditPage

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=AuditPage, summary="Who did what and when, newest first")
def list_audit(
    rt: RuntimeDep,
    principal: AdminKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    action: Annotated[str | None, Query(max_length=50)] = None,
    key_id: Annotated[str | None, Query(max_length=36)] = None,
    since: UtcDateTime | None = None,
    until: UtcDateTime | None = None,
) -> AuditPage:
    return audit.list_entries(rt, limit=limit, offset=offset, action=action, key_id=key_id, since=since, until=until)
