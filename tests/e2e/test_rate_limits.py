"""Rate limits shared by two `facegate serve` processes through the real Redis on this machine
(127.0.0.1:6379): a key's requests count once, whichever replica answers them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import ADMIN_KEY, Processes, child_env

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379"


@pytest.fixture
def redis_db() -> int:
    """A Redis logical database of its own, emptied, so other users of the server do not interfere."""
    client = redis.Redis.from_url(REDIS_URL, db=7)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; start it (see the machine's notes)")
    client.flushdb()
    return 7


def test_two_replicas_share_a_keys_rate_limit_through_redis(
    processes: Processes, tmp_path: Path, redis_db: int
) -> None:
    env = child_env(
        tmp_path / "data",
        FACEGATE_RATE_LIMIT__DEFAULT="6/minute",
        FACEGATE_RATE_LIMIT__STORAGE_URL=f"{REDIS_URL}/{redis_db}",
    )
    # One data directory (SQLite) is enough here: both replicas see the same keys; only counters matter.
    a = processes.start_server("a", env)
    b = processes.start_server("b", env)
    headers = {"X-API-Key": ADMIN_KEY}
    statuses = []
    with httpx.Client(headers=headers, timeout=30) as client:
        for i in range(8):
            server = a if i % 2 == 0 else b
            response = client.get(f"{server.url}/api/v1/people")
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert response.headers["RateLimit-Limit"] == "6"
            else:
                assert response.json()["error"]["code"] == "rate_limited"
                assert int(response.headers["Retry-After"]) >= 1
    # Six across both replicas, not six each.
    assert statuses == [200] * 6 + [429, 429]


def test_failed_authentication_is_counted_per_address_across_replicas(
    processes: Processes, tmp_path: Path, redis_db: int
) -> None:
    env = child_env(
        tmp_path / "data",
        FACEGATE_RATE_LIMIT__FAILED_AUTH="4/minute",
        FACEGATE_RATE_LIMIT__STORAGE_URL=f"{REDIS_URL}/{redis_db}",
    )
    a = processes.start_server("a", env)
    b = processes.start_server("b", env)
    statuses = []
    with httpx.Client(headers={"X-API-Key": "fg_guess"}, timeout=30) as client:
        for i in range(6):
            statuses.append(client.get(f"{(a if i % 2 == 0 else b).url}/api/v1/people").status_code)
    assert statuses == [401] * 4 + [429, 429]
