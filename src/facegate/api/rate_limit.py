"""Rate limits with the `limits` library: per API key (a default, overridden per scope), and per client
address for failed credentials. Counters live in memory or in Redis (shared by replicas)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from facegate.config import RateLimitSettings, Scope
from facegate.errors import RateLimited

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        # The IETF draft's fields (RateLimit-Limit / -Remaining / -Reset, reset in seconds from now).
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def _parse(text: str) -> RateLimitItem | None:
    return parse(text) if text.strip() else None


class RateLimiter:
    """Counters are kept per (kind, identity); a storage outage lets requests through (logged), rather than
    turning a Redis hiccup into an outage of the API."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self._default = _parse(settings.default)
        self._scopes = {scope: _parse(text) for scope, text in settings.scopes.items()}
        self._failed_auth = _parse(settings.failed_auth)
        storage = storage_from_string(settings.storage_url)
        if not isinstance(storage, Storage):
            raise ValueError(f"FACEGATE_RATE_LIMIT__STORAGE_URL {settings.storage_url!r} is not a synchronous storage.")
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(self._storage)

    def _limit_for(self, scope: Scope | None) -> RateLimitItem | None:
        if scope is not None and scope in self._scopes:
            return self._scopes[scope]
        return self._default

    def _status(self, item: RateLimitItem, *identity: str) -> RateLimitStatus:
        stats = self._limiter.get_window_stats(item, *identity)
        return RateLimitStatus(
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=max(0, int(stats.reset_time - time.time() + 0.999)),
        )

    def hit_key(self, key_id: str, scope: Scope | None) -> RateLimitStatus | None:
        item = self._limit_for(scope)
        if item is None:
            return None
        identity = ("key", key_id, scope or "any")
        try:
            allowed = self._limiter.hit(item, *identity)
            status = self._status(item, *identity)
        except Exception:
            log.exception("rate-limit storage unavailable; letting the request through")
            return None
        if not allowed:
            raise RateLimited(
                f"Rate limit of {item} for this key reached; retry in {status.reset_seconds} s.",
                retry_after_seconds=status.reset_seconds,
            )
        return status

    def check_address(self, address: str) -> None:
        """Refuse a client address that has failed authentication too often, before checking its key."""
        item = self._failed_auth
        if item is None:
            return
        try:
            allowed = self._limiter.test(item, "failed-auth", address)
            if not allowed:
                status = self._status(item, "failed-auth", address)
        except Exception:
            log.exception("rate-limit storage unavailable; letting the request through")
            return
        if not allowed:
            raise RateLimited(
                f"Too many failed authentications from this address; retry in {status.reset_seconds} s.",
                retry_after_seconds=status.reset_seconds,
            )

    def failed_auth(self, address: str) -> None:
        if self._failed_auth is None:
            return
        try:
            self._limiter.hit(self._failed_auth, "failed-auth", address)
        except Exception:
            log.exception("rate-limit storage unavailable")

    def ready(self) -> bool:
        try:
            return bool(self._storage.check())
        except Exception:
            return False
