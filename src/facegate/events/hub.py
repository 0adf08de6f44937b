"""In-process fan-out: every subscriber (an SSE connection, a test, `facegate watch`) gets its own bounded queue;
a slow subscriber loses its oldest events, never the publisher's time or unbounded memory. The newest
`replay_size` events are kept too, for a subscriber that reconnects after an event it had (SSE `Last-Event-ID`)."""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable

from facegate.events.base import Event
from facegate.events.delivery import DeliveryStats


class Subscription:
    def __init__(self, hub: EventHub, maxsize: int, notify: Callable[[], None] | None = None) -> None:
        self._hub = hub
        self._queue: queue.Queue[Event] = queue.Queue(maxsize)
        self._notify = notify
        self.dropped = 0
        self.closed = False
        # Asked to resume after an event: the kept events published after it (before any queued ones), and
        # whether events in between may be missing (that event is no longer kept, or never was here).
        self.replay: list[Event] = []
        self.gap = False

    def offer(self, event: Event) -> bool:
        """Queue an event, dropping the oldest when full; True if one was dropped."""
        dropped = False
        while True:
            try:
                self._queue.put_nowait(event)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                    dropped = True
                except queue.Empty:
                    pass
        self._wake()
        return dropped

    def _wake(self) -> None:
        if self._notify is not None:
            self._notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds without one (0: do not wait)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def _closed_by_hub(self) -> None:
        self.closed = True
        self._wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """An `EventPublisher` that hands events to the subscribers of this process."""

    def __init__(self, queue_size: int = 256, *, replay_size: int = 0) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._kept: collections.deque[Event] = collections.deque(maxlen=replay_size)
        self._delivered = 0
        self._dropped = 0

    def open(self) -> None:
        pass

    def subscribe(self, notify: Callable[[], None] | None = None, *, after: str | None = None) -> Subscription:
        """A new subscription. `notify` is called (from the publishing thread, so it must be quick and must not
        raise) after each event is queued and when the hub closes: how an asyncio consumer learns to look
        without a thread blocked in `get`. `after`: the id of the last event the subscriber had; the kept
        events since are in `replay` (all kept events, and `gap` set, when that id is not kept), and every
        later event is queued: none twice, none missed in between."""
        subscription = Subscription(self, self._queue_size, notify)
        with self._lock:
            if after is not None:
                kept = list(self._kept)
                ids = [event.id for event in kept]
                if after in ids:
                    subscription.replay = kept[ids.index(after) + 1 :]
                else:
                    subscription.replay, subscription.gap = kept, True
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def publish(self, event: Event) -> None:
        with self._lock:
            # Kept and handed to the current subscribers at once: a subscriber replays it or queues it.
            self._kept.append(event)
            subscribers = list(self._subscribers)
        dropped = sum(subscription.offer(event) for subscription in subscribers)
        with self._lock:
            self._delivered += len(subscribers)
            self._dropped += dropped

    def stats(self) -> DeliveryStats:
        """Events queued for subscribers (one per subscriber), and those pushed out unread by newer ones."""
        with self._lock:
            return DeliveryStats("subscribers", self._delivered, self._dropped, 0, 0)

    def close(self) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for subscription in subscribers:
            subscription._closed_by_hub()
