"""Redis Streams (FACEGATE_EVENTS__TYPE=redis): every event is appended (XADD) to one stream named by the prefix
(`facegate.events`), trimmed to about `max_len` entries (MAXLEN ~), with the fields `type`, `id` and `data` (the
event's JSON). One stream for every type keeps their order: a track's `left` after its `appeared`. Read it with
XREAD, or with XREADGROUP for consumer groups that share the work."""

from __future__ import annotations

import redis
import redis.exceptions

from facegate.events.base import Event
from facegate.events.delivery import PermanentError, display_url

DEFAULT_URL = "redis://127.0.0.1:6379/0"


class RedisTransport:
    backend = "redis"

    def __init__(self, url: str | None, prefix: str, *, timeout: float, max_len: int) -> None:
        self.url = url or DEFAULT_URL
        self.target = display_url(self.url)
        self.stream = prefix
        self.timeout = timeout
        self.max_len = max_len
        self._client: redis.Redis | None = None

    def connect(self) -> None:
        client = redis.Redis.from_url(
            self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout, retry_on_timeout=False
        )
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
        self._client = client

    def send(self, event: Event) -> None:
        assert self._client is not None
        try:
            self._client.xadd(
                self.stream,
                {"type": event.type, "id": event.id, "data": event.to_json()},
                maxlen=self.max_len,
                approximate=True,
            )
        except redis.exceptions.ResponseError as exc:
            # The server understood and refused (the key holds another type, memory limit, ACL): no retry fixes it.
            raise PermanentError(str(exc)) from exc

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
