"""Periodic upkeep of the store, run by the service in the background and by `facegate purge`: match
history past its retention, blobs left pending by interrupted operations, the change log's old entries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from facegate.services.matches import purge_history
from facegate.services.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class MaintenanceResult:
    matches_purged: int
    blobs_settled: int
    changes_trimmed: int


def run(rt: Runtime, *, pending_grace_seconds: float | None = None) -> MaintenanceResult:
    retention = rt.settings.retention
    purged = purge_history(rt, retention.match_days) if retention.match_days else 0
    grace = retention.pending_blob_grace_seconds if pending_grace_seconds is None else pending_grace_seconds
    settled = rt.settle_pending_blobs(grace)
    trimmed = rt.store.trim_changes(datetime.now(UTC) - timedelta(days=retention.change_log_days))
    result = MaintenanceResult(purged, settled, trimmed)
    if purged or settled or trimmed:
        log.info("maintenance: %s", result)
    return result
