"""The audit log: who (key id and client address) did what (enroll, delete, keys created or revoked) to
which record, and when. Never key material or images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from facegate.services.runtime import StoreRuntime
from facegate.services.schemas import AuditPage, AuditPublic
from facegate.store.base import AuditEntry, AuditFilter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    key_id: str | None
    address: str | None


CLI = Actor(key_id=None, address="cli")


def record(rt: StoreRuntime, actor: Actor, action: str, target: str | None = None, **detail: Any) -> None:
    """Called after the action succeeded. A failure to write the entry is logged loudly rather than turning
    a completed action into an error."""
    entry = AuditEntry(
        at=datetime.now(UTC),
        action=action,
        key_id=actor.key_id,
        address=actor.address,
        target=target,
        detail=detail,
    )
    try:
        rt.store.audit.record(entry)
    except Exception:
        log.exception("AUDIT WRITE FAILED: %s", entry)


def list_entries(
    rt: StoreRuntime,
    *,
    limit: int,
    offset: int,
    action: str | None = None,
    key_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditPage:
    rows, total = rt.store.audit.query(
        AuditFilter(action=action, key_id=key_id, since=since, until=until), limit=limit, offset=offset
    )
    return AuditPage(
        items=[
            AuditPublic(
                id=r.id,
                at=r.at,
                action=r.action,
                key_id=r.key_id,
                address=r.address,
                target=r.target,
                detail=r.detail,
            )
            for r in rows
        ],
        total=total,
    )
