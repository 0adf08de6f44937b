"""Delivery off the caller's thread, shared by every broker publisher and webhook: a bounded queue that drops its
oldest event when full, one background thread that connects, sends in order, reconnects with exponential backoff
and counts what happened. `publish` only appends to the queue, so a slow or dead broker never stalls recognition.

Every event offered ends up counted once: published (the backend accepted it), failed (given up after an error:
a refusal retrying cannot fix, or `attempts` failed tries), dropped (pushed out of a full queue, or still queued
when the publisher closed), or still queued.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from facegate.events.base import Event

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """A refusal that retrying cannot fix (a webhook answering 4xx, a payload the broker rejects): the event is
    counted as failed at once."""


class Transport(Protocol):
    """One backend's connection. Called from the delivery thread only; each call is bounded by the backend's
    timeout. `send` raises `PermanentError` for a refusal and anything else for a failure worth retrying (after
    which the connection is dropped and made anew)."""

    backend: str  # the metrics label: nats, redis, mqtt, webhook
    target: str  # for logs: where events go, without credentials

    def connect(self) -> None: ...

    def send(self, event: Event) -> None: ...

    def disconnect(self) -> None: ...


@dataclass(frozen=True)
class DeliveryPolicy:
    queue_size: int = 1000
    attempts: int = 5
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    # At close, how long delivery may go on for what is queued (only while the backend answers).
    flush_seconds: float = 2.0


@dataclass(frozen=True)
class DeliveryStats:
    backend: str
    published: int
    dropped: int
    failed: int
    queued: int


class QueuedPublisher:
    """An `EventPublisher` that hands events to a `Transport` on its own thread."""

    def __init__(self, transport: Transport, policy: DeliveryPolicy) -> None:
        self.transport = transport
        self.policy = policy
        self._queue: collections.deque[Event] = collections.deque()
        self._lock = threading.Condition()
        self._closing = threading.Event()
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self._settled = False
        self.published = 0
        self.dropped = 0
        self.failed = 0

    def __repr__(self) -> str:
        return f"<{self.transport.backend} publisher to {self.transport.target}>"

    def open(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"facegate-events-{self.transport.backend}", daemon=True)
        self._thread.start()

    def publish(self, event: Event) -> None:
        with self._lock:
            if self._closing.is_set():
                self.dropped += 1
                return
            if len(self._queue) >= self.policy.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._deadline = time.monotonic() + self.policy.flush_seconds
            self._closing.set()
            self._lock.notify()
        if self._thread is not None:
            # The flush, plus one backend call in flight (each is bounded by the backend's own timeout).
            self._thread.join(self.policy.flush_seconds + 10.0)
            if self._thread.is_alive():
                log.warning("%r did not stop in time; abandoning its thread", self)
        self._settle()

    def stats(self) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(self.transport.backend, self.published, self.dropped, self.failed, len(self._queue))

    # The delivery thread ---------------------------------------------------------------------------------------
    def _settle(self) -> None:
        """What is still queued when delivery ends is dropped (counted once, whoever gets here first)."""
        with self._lock:
            if self._settled:
                return
            self._settled = True
            if self._queue:
                log.warning("%r closed with %d events undelivered", self, len(self._queue))
            self.dropped += len(self._queue)
            self._queue.clear()

    def _next(self) -> Event | None:
        """The oldest queued event, waiting for one; None once closing and nothing is left (or time is up)."""
        with self._lock:
            while not self._queue:
                if self._closing.is_set():
                    return None
                self._lock.wait()
            if self._closing.is_set() and time.monotonic() >= self._deadline:
                return None
            return self._queue.popleft()

    def _nothing_left(self) -> bool:
        with self._lock:
            return self._closing.is_set() and not self._queue

    def _backoff(self, delay: float) -> bool:
        """Wait `delay` before trying again; False when closing (a backend failing then gets no more tries)."""
        self._closing.wait(delay)
        return not self._closing.is_set()

    def _run(self) -> None:
        transport = self.transport
        delay = self.policy.backoff_seconds
        connected = False
        down_logged = False
        event: Event | None = None
        tries = 0
        try:
            while True:
                # Connect before the first event is queued: an unreachable broker is reported at start, and MQTT
                # availability says online as soon as facegate runs.
                if not connected:
                    if event is None and self._nothing_left():
                        return
                    try:
                        transport.connect()
                    except Exception as exc:
                        if not down_logged:
                            log.warning(
                                "events: cannot reach %s %s (%s); retrying with backoff up to %.0fs, keeping the "
                                "newest %d events meanwhile",
                                transport.backend,
                                transport.target,
                                _describe(exc),
                                self.policy.backoff_max_seconds,
                                self.policy.queue_size,
                            )
                            down_logged = True
                        else:
                            log.debug("events: %s %s still unreachable: %s", transport.backend, transport.target, exc)
                        if not self._backoff(delay):
                            return
                        delay = min(2 * delay, self.policy.backoff_max_seconds)
                        continue
                    # The delay resets on a delivered event, not here: a broker that accepts connections but
                    # fails every send must not be retried at full speed.
                    connected = True
                    if down_logged:
                        log.warning("events: connected to %s %s again", transport.backend, transport.target)
                        down_logged = False
                    else:
                        log.info("events: connected to %s %s", transport.backend, transport.target)
                if event is None:
                    event, tries = self._next(), 0
                    if event is None:
                        return
                try:
                    transport.send(event)
                except PermanentError as exc:
                    log.warning(
                        "events: %s %s refused a %s event: %s", transport.backend, transport.target, event.type, exc
                    )
                    self._count(failed=1)
                    event = None
                    continue
                except Exception as exc:
                    tries += 1
                    connected = self._disconnect()
                    if tries >= self.policy.attempts:
                        log.warning(
                            "events: giving up a %s event for %s %s after %d attempts: %s",
                            event.type,
                            transport.backend,
                            transport.target,
                            tries,
                            _describe(exc),
                        )
                        self._count(failed=1)
                        event = None
                    else:
                        log.info(
                            "events: sending to %s %s failed (%s); retrying",
                            transport.backend,
                            transport.target,
                            _describe(exc),
                        )
                    if not self._backoff(delay):
                        return
                    delay = min(2 * delay, self.policy.backoff_max_seconds)
                    continue
                self._count(published=1)
                event, delay = None, self.policy.backoff_seconds
        except Exception:
            log.exception("events: the %s delivery thread stopped", transport.backend)
        finally:
            if event is not None:
                self._count(dropped=1)
            if connected:
                self._disconnect()
            self._settle()

    def _disconnect(self) -> bool:
        try:
            self.transport.disconnect()
        except Exception as exc:
            log.debug("events: closing the %s connection failed: %s", self.transport.backend, exc)
        return False

    def _count(self, *, published: int = 0, failed: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self.published += published
            self.failed += failed
            self.dropped += dropped


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def display_url(url: str) -> str:
    """A URL for logs: scheme, host and port, path; no credentials, no query (webhook URLs may carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
