"""NATS JetStream (FACEGATE_EVENTS__TYPE=nats): each event is published to `<prefix>.<type>` and acknowledged by
the stream that holds `<prefix>.>` (created on connect when no stream holds those subjects yet; an existing one
is used as the operator configured it). The body is the event's JSON; the `Nats-Msg-Id` header carries its id, so
a retried publish is stored once (JetStream's duplicate window).

nats-py is asyncio: the connection lives on an event loop in a thread of its own, and the delivery thread waits
for each call with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from facegate.events.base import Event
from facegate.events.delivery import display_url

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"
# What a stream facegate creates keeps; an operator's own stream keeps what they chose.
MAX_AGE_SECONDS = 7 * 24 * 3600.0


def stream_name(prefix: str) -> str:
    """The JetStream stream for a prefix: facegate.events -> FACEGATE_EVENTS (names allow no dots)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper()


def _covers(pattern: str, subject: str) -> bool:
    """Whether a subject filter (with * and > wildcards) matches every subject under `subject`'s wildcard form."""
    want, have = subject.split("."), pattern.split(".")
    for i, token in enumerate(have):
        if token == ">":
            return True
        if i >= len(want) or (token != "*" and token != want[i]) or (token == "*" and want[i] == ">"):
            return False
    return len(have) == len(want)


async def ensure_stream(js: JetStreamContext, prefix: str, max_msgs: int) -> None:
    """The stream that holds `<prefix>.>`: made when no stream holds those subjects yet (another stream that
    already holds them is used as the operator configured it)."""
    name, subjects = stream_name(prefix), f"{prefix}.>"
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        try:
            await js.add_stream(name=name, subjects=[subjects], max_msgs=max_msgs, max_age=MAX_AGE_SECONDS)
        except BadRequestError as exc:
            # Another stream already holds these subjects (JetStream refuses overlaps): publish into it.
            if "overlap" not in str(exc).lower():
                raise
        return
    if not any(_covers(s, subjects) for s in info.config.subjects or []):
        raise RuntimeError(f"stream {name} exists but does not hold {subjects}; fix it or change the prefix")


class NatsTransport:
    backend = "nats"

    def __init__(self, url: str | None, prefix: str, *, timeout: float, max_msgs: int) -> None:
        self.url = url or DEFAULT_URL
        self.target = display_url(self.url)
        self.prefix = prefix
        self.stream = stream_name(prefix)
        self.timeout = timeout
        self.max_msgs = max_msgs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout + 1.0)
        except BaseException:
            future.cancel()
            raise

    def connect(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="facegate-events-nats-loop", daemon=True)
        self._thread.start()
        try:
            self._nc = self._call(self._connect())
            self._js = self._nc.jetstream(timeout=self.timeout)
            self._call(ensure_stream(self._js, self.prefix, self.max_msgs))
        except BaseException:
            self.disconnect()
            raise

    async def _connect(self) -> Client:
        async def quiet(*_: Any) -> None:
            """nats-py logs every connection error itself; the delivery thread reports them once."""

        # Reconnection is the delivery thread's (one policy, one count for every backend).
        return await nats.connect(
            self.url,
            name="facegate",
            connect_timeout=max(1, round(self.timeout)),
            allow_reconnect=False,
            # One try (0 would mean unlimited: nats-py then retries the initial connection forever).
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            error_cb=quiet,
            disconnected_cb=quiet,
            closed_cb=quiet,
        )

    def send(self, event: Event) -> None:
        assert self._js is not None
        subject = f"{self.prefix}.{event.type}"
        self._call(self._js.publish(subject, event.to_json(), timeout=self.timeout, headers={"Nats-Msg-Id": event.id}))

    @staticmethod
    async def _shutdown(nc: Client | None) -> None:
        """Close the connection and end whatever else runs on the loop (a connect that timed out)."""
        if nc is not None and not nc.is_closed:
            await nc.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def disconnect(self) -> None:
        loop, thread, nc = self._loop, self._thread, self._nc
        self._loop = self._thread = self._nc = self._js = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(nc), loop).result(self.timeout + 1.0)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(self.timeout)
            if not loop.is_running():
                loop.close()


class NatsRelay:
    """Feeds the events other processes publish on `<prefix>.>` (`facegate worker`s running the streams) to
    `deliver`, so that this server's /api/v1/events shows them too. A core subscription: it sees what is
    published while it runs, as an SSE client does; nats-py reconnects it by itself."""

    def __init__(self, url: str | None, prefix: str, deliver: Callable[[bytes, str], None]) -> None:
        self.url = url or DEFAULT_URL
        self.prefix = prefix
        self._deliver = deliver
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="facegate-events-relay", daemon=True)
        self._nc: Client | None = None

    def open(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.create_task(self._subscribe())
        self._loop.run_forever()

    async def _subscribe(self) -> None:
        async def quiet(*_: Any) -> None:
            pass

        async def received(message: Msg) -> None:
            self._deliver(message.data, (message.headers or {}).get("Nats-Msg-Id", ""))

        while True:
            try:
                self._nc = await nats.connect(
                    self.url, name="facegate-relay", max_reconnect_attempts=-1, error_cb=quiet, disconnected_cb=quiet
                )
                await self._nc.subscribe(f"{self.prefix}.>", cb=received)
                log.info("events relay: following %s.> on %s", self.prefix, display_url(self.url))
                return
            except Exception as exc:
                log.warning("events relay: cannot reach %s (%s); retrying", display_url(self.url), exc)
                await asyncio.sleep(5.0)

    def close(self) -> None:
        async def stop() -> None:
            if self._nc is not None and not self._nc.is_closed:
                await self._nc.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
