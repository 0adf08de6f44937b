"""`facegate worker --role webhooks`: webhook delivery in processes of its own, fed by NATS JetStream.

With `FACEGATE_EVENTS__WEBHOOK_DELIVERY=workers` (and `FACEGATE_EVENTS__TYPE=nats`) the processes that make events
(servers, stream workers) only publish them to the JetStream stream; these workers read the stream and POST each
event to each webhook URL, signed as inline delivery does (events/webhooks.py).

- One durable pull consumer per webhook URL (`webhooks-<hash of the URL>`), shared by every webhook worker: each
  event goes to each URL once, from whichever worker fetched it; a slow URL never holds up another.
- An event is acknowledged once its URL answered 2xx. A failed try (5xx, 408, 429, timeout, unreachable) is
  handed back to JetStream with a delay doubling from `backoff_seconds` up to `backoff_max_seconds`, at most
  `attempts` tries in all; a 4xx is not retried. A worker killed mid-delivery leaves the event unacknowledged:
  JetStream gives it to another worker after `ack_wait`, so an event is delivered at least once (the
  X-Facegate-Delivery header, the event's id, lets a receiver drop a repeat).
- A consumer created for the first time starts with the events published from then on; afterwards it resumes
  where it stopped, so events published while no webhook worker ran are delivered when one starts (up to what
  the stream keeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import threading

import nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from facegate.config import EventsSettings
from facegate.events.base import Event
from facegate.events.delivery import PermanentError, display_url
from facegate.events.nats_jetstream import DEFAULT_URL, ensure_stream, stream_name
from facegate.events.webhooks import WebhookTransport

log = logging.getLogger(__name__)

FETCH_BATCH = 10


def consumer_name(url: str) -> str:
    """The durable consumer of a webhook URL: the same in every worker, no URL text in NATS."""
    return "webhooks-" + hashlib.blake2b(url.encode(), digest_size=8).hexdigest()


def retry_delay(settings: EventsSettings, tries: int) -> float:
    """The wait before try `tries + 1`: doubling from backoff_seconds, at most backoff_max_seconds."""
    return float(min(settings.backoff_seconds * 2 ** max(0, tries - 1), settings.backoff_max_seconds))


async def _handle(msg: Msg, transport: WebhookTransport, settings: EventsSettings) -> None:
    try:
        event = Event.from_body(json.loads(msg.data), (msg.headers or {}).get("Nats-Msg-Id", ""))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("webhooks: skipped a message on %s that is no facegate event: %s", msg.subject, exc)
        await msg.term()
        return
    tries = msg.metadata.num_delivered or 1
    try:
        await asyncio.to_thread(transport.send, event)
    except PermanentError as exc:
        log.warning("webhooks: %s refused event %s (%s); not retried", transport.target, event.id, exc)
        await msg.term()
    except Exception as exc:  # 5xx, timeouts, unreachable: JetStream delivers it again after the delay
        if tries >= settings.attempts:
            log.warning("webhooks: %s failed event %s %d times (%s); given up", transport.target, event.id, tries, exc)
            await msg.term()
        else:
            await msg.nak(delay=retry_delay(settings, tries))
    else:
        await msg.ack()


async def _serve_url(
    js: JetStreamContext,
    settings: EventsSettings,
    transport: WebhookTransport,
    stop: asyncio.Event,
    subscribed: asyncio.Event,
) -> None:
    subject = f"{settings.prefix}.>"
    durable = consumer_name(transport.url)
    config = ConsumerConfig(
        durable_name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,
        # Long enough for one try (the answer's timeout) before JetStream hands the event to another worker.
        ack_wait=settings.timeout_seconds * 2 + 5.0,
        max_deliver=settings.attempts,
    )
    sub = await js.pull_subscribe(subject, durable=durable, stream=stream_name(settings.prefix), config=config)
    subscribed.set()
    log.info("webhooks: delivering %s.> to %s", settings.prefix, transport.target)
    while not stop.is_set():
        try:
            messages = await sub.fetch(FETCH_BATCH, timeout=1.0)
        except (NatsTimeout, TimeoutError):  # nothing to fetch within the second (nats-py raises either)
            continue
        except Exception as exc:  # NATS reconnecting: what was fetched and not acknowledged comes again
            log.warning("webhooks: fetching for %s: %r; retrying", transport.target, exc)
            await asyncio.sleep(1.0)
            continue
        for msg in messages:
            try:
                await _handle(msg, transport, settings)
            except Exception as exc:  # the acknowledgement lost with the connection: JetStream delivers it again
                log.warning("webhooks: event for %s not acknowledged: %r", transport.target, exc)


async def _run(settings: EventsSettings, stop: asyncio.Event, ready: threading.Event | None) -> None:
    nc = await nats.connect(settings.url or DEFAULT_URL, name="facegate-webhooks", max_reconnect_attempts=-1)
    try:
        js = nc.jetstream(timeout=settings.timeout_seconds)
        # The stream is made (or checked) as a publisher makes it: the workers may start before any publisher.
        await ensure_stream(js, settings.prefix, settings.max_len)
        secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else b""
        transports = [WebhookTransport(u, secret, timeout=settings.timeout_seconds) for u in settings.webhooks]
        subscribed = [asyncio.Event() for _ in transports]
        tasks = [
            asyncio.create_task(_serve_url(js, settings, t, stop, s))
            for t, s in zip(transports, subscribed, strict=True)
        ]
        waiting = asyncio.create_task(_every(subscribed))
        await asyncio.wait([*tasks, waiting], return_when=asyncio.FIRST_COMPLETED)
        if ready is not None and all(s.is_set() for s in subscribed):
            ready.set()  # every consumer exists: events published from now on are delivered
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        waiting.cancel()
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _every(events: list[asyncio.Event]) -> None:
    for event in events:
        await event.wait()


def run_webhook_worker(
    settings: EventsSettings, *, stop: threading.Event | None = None, ready: threading.Event | None = None
) -> None:
    """Deliver webhooks until SIGTERM or Ctrl-C (or `stop`, when given: then no signal handlers are installed)."""
    if settings.type != "nats" or not settings.webhooks:
        raise ValueError("webhook workers need FACEGATE_EVENTS__TYPE=nats and FACEGATE_EVENTS__WEBHOOKS")
    log.info("webhook worker: %d URL(s) from %s", len(settings.webhooks), display_url(settings.url or DEFAULT_URL))

    async def main() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        if stop is None:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, done.set)
        else:
            loop.run_in_executor(None, lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)))
        await _run(settings, done, ready)

    asyncio.run(main())
