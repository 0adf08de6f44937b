"""API keys: random, shown once, stored only as a keyed hash; scopes; expiry; revocation that holds at once
on every replica (each request checks the shared store; nothing is cached)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime

from facegate.config import Scope
from facegate.errors import InvalidInput, NotFound
from facegate.services.runtime import StoreRuntime
from facegate.services.schemas import KeyCreated, KeyPublic
from facegate.store.base import KeyCreate, KeyRow

log = logging.getLogger(__name__)

KEY_PREFIX = "fg_"
# 24 random bytes = 192 bits, URL-safe base64: "fg_" + 32 characters.
KEY_BYTES = 24
# Keys shown in listings by their first characters only.
SHOWN_CHARS = 8
# Longer presented credentials are not keys of ours: refuse before hashing.
MAX_PRESENTED_LENGTH = 256
DEFAULT_PEPPER = b"facegate-api-key-v1"
BOOTSTRAP_NAME = "bootstrap admin"
MIN_BOOTSTRAP_LENGTH = 24


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(rt: StoreRuntime, key: str) -> str:
    pepper = rt.settings.auth.pepper
    secret = pepper.get_secret_value().encode() if pepper else DEFAULT_PEPPER
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def to_public(row: KeyRow) -> KeyPublic:
    return KeyPublic(
        id=row.id,
        name=row.name,
        scopes=row.scopes,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _new(rt: StoreRuntime, key: str, name: str, scopes: list[Scope], expires_at: datetime | None) -> KeyCreate:
    return KeyCreate(
        name=name,
        scopes=sorted(set(scopes)),
        prefix=key[: len(KEY_PREFIX) + SHOWN_CHARS],
        key_hash=hash_key(rt, key),
        expires_at=expires_at,
    )


def create_key(rt: StoreRuntime, *, name: str, scopes: list[Scope], expires_at: datetime | None = None) -> KeyCreated:
    if not name.strip():
        raise InvalidInput("name must not be empty.", code="invalid_name")
    if not scopes:
        raise InvalidInput("Give at least one scope: admin, enroll, identify or read.", code="invalid_scopes")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            raise InvalidInput("expires_at must be in the future.", code="invalid_expiry")
    key = generate_key()
    row = rt.store.keys.create(_new(rt, key, name.strip(), scopes, expires_at))
    assert row is not None
    return KeyCreated(key=to_public(row), secret=key)


def ensure_bootstrap_key(rt: StoreRuntime) -> str | None:
    """On a store without any key, create an admin key: FACEGATE_AUTH__BOOTSTRAP_KEY if set, else a new one,
    which is returned (to be shown once). None when the store already had a key or the configured one was
    used."""
    configured = rt.settings.auth.bootstrap_key
    key = configured.get_secret_value() if configured else generate_key()
    if len(key) < MIN_BOOTSTRAP_LENGTH:
        raise InvalidInput(
            f"FACEGATE_AUTH__BOOTSTRAP_KEY must be at least {MIN_BOOTSTRAP_LENGTH} characters of random text.",
            code="invalid_bootstrap_key",
        )
    row = rt.store.keys.create(_new(rt, key, BOOTSTRAP_NAME, ["admin"], None), only_if_none=True)
    if row is None or configured:
        return None
    return key


def list_keys(rt: StoreRuntime) -> list[KeyPublic]:
    return [to_public(k) for k in rt.store.keys.list_keys()]


def revoke_key(rt: StoreRuntime, key_id: str) -> KeyPublic:
    return to_public(rt.store.keys.revoke(key_id, datetime.now(UTC)))


def require_key(rt: StoreRuntime, key_id: str) -> KeyPublic:
    row = rt.store.keys.get(key_id)
    if row is None:
        raise NotFound(f"No API key with id {key_id}.", code="key_not_found")
    return to_public(row)


def authenticate(rt: StoreRuntime, presented: str) -> KeyRow | None:
    """The live key these credentials are, or None (unknown, revoked or expired)."""
    if not presented.startswith(KEY_PREFIX) and rt.settings.auth.bootstrap_key is None:
        return None
    if len(presented) > MAX_PRESENTED_LENGTH:
        return None
    digest = hash_key(rt, presented)
    row = rt.store.keys.find_by_hash(digest)
    # The lookup is by an index on the hash; compare again in constant time all the same.
    if row is None or not hmac.compare_digest(digest, hash_key(rt, presented)):
        return None
    now = datetime.now(UTC)
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    _touch(rt, row, now)
    return row


def _touch(rt: StoreRuntime, row: KeyRow, now: datetime) -> None:
    interval = rt.settings.auth.touch_interval_seconds
    last = rt.key_touches.get(row.id)
    if last is not None and time.monotonic() - last < interval:
        return
    rt.key_touches[row.id] = time.monotonic()
    try:
        rt.store.keys.touch(row.id, now)
    except Exception:  # a last-used time is not worth failing a request for
        log.exception("could not record the use of key %s", row.id)


def allows(row: KeyRow, scope: Scope | None) -> bool:
    return scope is None or "admin" in row.scopes or scope in row.scopes
