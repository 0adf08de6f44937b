"""Redis Streams (FACEGATE_EVENTS__TYPE=redis): every event is appended (XADD) to one stream named by the prefix
(`facegate.events`), trimmed to about `max_len` entries (MAXLEN ~), with the fields `type`, `id` and `data` (the
event's JSON). One stream for every type keeps their order: a track's `left` after its `appeared`. Read it with
XREAD, or with XREADGROUP for consumer groups that share the work."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
import redis.exceptions

from facegate.events.base import Event
from facegate.events.delivery import PermanentError, display_url

log = logging.getLogger(__name__)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
# How long one XREAD waits for entries: also how soon the relay notices it is closed.
BLOCK_MS = 1000
# Entries read at once while catching up.
READ_COUNT = 100
# The wait before connecting again after the server went away.
RETRY_SECONDS = 2.0


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


class RedisRelay:
    """Feeds the events other processes append to the stream (`facegate worker`s running the streams) to
    `deliver`, so that this server's /api/v1/events shows them too. It reads (XREAD) from the stream's newest
    entry when it starts, as an SSE client sees what is published while it runs; after losing the server it
    goes on from the last entry it read, so an outage loses nothing the stream still holds."""

    def __init__(
        self, url: str | None, stream: str, deliver: Callable[[bytes, str], None], *, timeout: float = 5.0
    ) -> None:
        self.url = url or DEFAULT_URL
        self.stream = stream
        self.timeout = timeout
        self._deliver = deliver
        self._closing = threading.Event()
        self.following = threading.Event()  # set once the starting entry is known: later entries are relayed
        self._thread = threading.Thread(target=self._run, name="facegate-events-relay", daemon=True)

    def open(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        last: bytes | None = None  # the id of the last entry read
        down_logged = False
        while not self._closing.is_set():
            try:
                with redis.Redis.from_url(
                    self.url, socket_timeout=self.timeout + BLOCK_MS / 1000, socket_connect_timeout=self.timeout
                ) as client:
                    if last is None:
                        newest = client.xrevrange(self.stream, count=1)
                        last = newest[0][0] if newest else b"0-0"
                        self.following.set()
                        log.info("events relay: following stream %s on %s", self.stream, display_url(self.url))
                    down_logged = False
                    while not self._closing.is_set():
                        for _, entries in client.xread({self.stream: last}, count=READ_COUNT, block=BLOCK_MS):
                            for entry_id, fields in entries:
                                last = entry_id
                                self._deliver(fields.get(b"data", b""), fields.get(b"id", b"").decode(errors="replace"))
            except redis.exceptions.RedisError as exc:
                if not down_logged:
                    log.warning("events relay: cannot read %s (%s); retrying", display_url(self.url), exc)
                    down_logged = True
                self._closing.wait(RETRY_SECONDS)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(self.timeout + BLOCK_MS / 1000 + 1.0)
