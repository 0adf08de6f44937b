"""In-process fan-out: every subscriber (an SSE connection, a test, `facegate watch`) gets its own bounded queue;
a slow subscriber loses its oldest events, never the publisher's time or unbounded memory."""

from __future__ import annotations

import queue
import threading

from facegate.events.base import Event


class Subscription:
    def __init__(self, hub: EventHub, maxsize: int) -> None:
        self._hub = hub
        self._queue: queue.Queue[Event] = queue.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """An `EventPublisher` that hands events to the subscribers of this process."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()

    def open(self) -> None:
        pass

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._queue_size)
        with self._lock:
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(event)

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()
