"""GET /api/v1/events: this process's events as Server-Sent Events (`event: <type>`, `id: <event id>`,
`data: <JSON body>`), a comment line every 15 s to keep proxies from closing an idle stream.

A stream waits on an asyncio event that the hub sets from the publishing thread, so an open stream holds no
worker thread. It ends when the client goes away, when the server shuts down (`app.state.stopping`) or when
its bounds (`limit`, `max_seconds`) are reached. A client that reconnects with `Last-Event-ID` (browsers'
EventSource does by itself) first gets the events published since, from the newest
FACEGATE_EVENTS__REPLAY_SIZE the server keeps in memory; when that id is no longer kept (or was never seen
here: another replica, a restart) an `event: gap` comes first and every kept event follows. Brokers
(FACEGATE_EVENTS__TYPE) are for consumers that must not miss any. With NATS or Redis, the first stream also
starts following the broker, so events that `facegate worker` processes publish show here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from typing import Annotated, get_args

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from facegate.api.auth import ReadKey
from facegate.api.deps import RuntimeDep
from facegate.events.base import Event, EventType
from facegate.events.hub import EventHub

router = APIRouter(prefix="/api/v1/events", tags=["events"])

MEDIA_TYPE = "text/event-stream"
KEEPALIVE_SECONDS = 15.0
# The longest a stream sleeps before looking at its deadline and the server's shutdown flag again.
POLL_SECONDS = 1.0

_TYPE = "|".join(get_args(EventType))
TYPES_PATTERN = rf"^({_TYPE})(,({_TYPE}))*$"

TypesFilter = Annotated[
    str | None,
    Query(
        pattern=TYPES_PATTERN,
        max_length=200,
        description="Only these event types, comma-separated",
        examples=["appeared,left"],
    ),
]
Limit = Annotated[int | None, Query(ge=1, le=1_000_000, description="End the stream after this many events")]
MaxSeconds = Annotated[
    float | None, Query(gt=0, le=86_400, description="End the stream after this long (seconds); unset: never")
]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=64,
        description="The id of the last event received: the kept events published since come first",
    ),
]

EXAMPLE = (
    ": facegate events\n\n"
    "id: 5b0f2d8c9a1e4c36b1f0e7a2d4c6b8e0\n"
    "event: appeared\n"
    'data: {"at":"2026-12-03T09:14:07.120000+00:00","box":{"height":80,"left":10,"top":20,"width":64},'
    '"confidence":0.93,"distance":0.21,"first_seen":"2026-12-03T09:14:06.500000+00:00","last_seen":'
    '"2026-12-03T09:14:07.100000+00:00","match_id":17,"name":"Lin-Manuel Miranda","person_id":"3f2c...",'
    '"stream":"door","track":1,"type":"appeared"}\n\n'
    ": keep-alive\n\n"
)


def frame(event: Event) -> str:
    """One event as a Server-Sent Events message (the JSON body has no newline)."""
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.to_json().decode()}\n\n"


def gap_frame(last_event_id: str, replayed: int) -> str:
    """Events after `last_event_id` may be missing: it is older than the kept ones, or unknown here. No `id:`
    line, so the client's last event id stays that of a real event."""
    body = json.dumps({"last_event_id": last_event_id, "replayed": replayed}, separators=(",", ":"))
    return f"event: gap\ndata: {body}\n\n"


@router.get(
    "",
    response_class=StreamingResponse,
    summary="Live events (Server-Sent Events): tracks appearing and leaving, recurring unknown people",
    responses={
        200: {
            "description": "An event stream: `event: <type>`, `id: <event id>`, `data: <JSON body>`; comment "
            "lines (`: keep-alive`) every 15 s. With `Last-Event-ID`, the kept events since that one come first; "
            'when it is not kept, first `event: gap` with `data: {"last_event_id", "replayed"}`, then every kept '
            "event",
            "content": {MEDIA_TYPE: {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
)
async def stream_events(
    request: Request,
    rt: RuntimeDep,
    principal: ReadKey,
    types: TypesFilter = None,
    limit: Limit = None,
    max_seconds: MaxSeconds = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    # Where `facegate worker`s run the streams, their events reach this server through the broker.
    rt.events.follow_broker()
    stopping: threading.Event | None = getattr(request.app.state, "stopping", None)
    wanted = frozenset(types.split(",")) if types else None
    return StreamingResponse(
        _stream(rt.events.hub, wanted, limit, max_seconds, stopping, last_event_id),
        media_type=MEDIA_TYPE,
        # No caching, and no buffering by nginx-like proxies (events must arrive when they happen).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    hub: EventHub,
    wanted: frozenset[str] | None,
    limit: int | None,
    max_seconds: float | None,
    stopping: threading.Event | None,
    last_event_id: str | None,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    def notify() -> None:
        # Called on the publishing thread; the loop may already be gone at shutdown.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(ready.set)

    subscription = hub.subscribe(notify, after=last_event_id)
    try:
        # Sent at once: the client sees the stream open (and, from here on, receives every event).
        yield ": facegate events\n\n"
        replay = [event for event in subscription.replay if wanted is None or event.type in wanted]
        if subscription.gap and last_event_id is not None:
            yield gap_frame(last_event_id, len(replay))
        now = loop.time()
        deadline = now + max_seconds if max_seconds is not None else None
        keepalive_at = now + KEEPALIVE_SECONDS
        sent = 0
        for missed in replay:
            yield frame(missed)
            sent += 1
            if limit is not None and sent >= limit:
                return
        while True:
            ready.clear()
            while (event := subscription.get(0)) is not None:
                if wanted is None or event.type in wanted:
                    yield frame(event)
                    sent += 1
                    if limit is not None and sent >= limit:
                        return
            if subscription.closed or (stopping is not None and stopping.is_set()):
                return
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if now >= keepalive_at:
                yield ": keep-alive\n\n"
                keepalive_at = now + KEEPALIVE_SECONDS
            wake = min(keepalive_at, deadline if deadline is not None else keepalive_at, now + POLL_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), max(0.0, wake - now))
    finally:
        subscription.close()
