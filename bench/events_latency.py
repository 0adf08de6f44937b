"""Event delivery latency: from `EventBus.publish` (what the video pipeline calls) to a consumer of each backend
on this machine, and what `publish` costs the caller.

    .venv/bin/python bench/events_latency.py [--events 300] [--rate 50] [--output FILE.json]

Run from the repository root with the local brokers up (NATS+JetStream 4222, Redis 6379, Mosquitto 1883). Per
backend, an event bus built from EventsSettings publishes `--events` track events at `--rate` per second while
a real consumer receives them: the in-process hub (what SSE and `facegate watch` read), a core NATS subscription
on the JetStream subjects, Redis XREAD BLOCK, a paho-mqtt QoS 1 subscription, and an HTTP server receiving the
webhook. Latency = receive time - publish time, same clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nats
import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion

from facegate.config import EventsSettings
from facegate.events.base import Event
from facegate.events.factory import build_event_bus
from facegate.events.nats_jetstream import stream_name

Received = Callable[[int], None]


def event(seq: int) -> Event:
    return Event(
        "appeared",
        {
            "stream": "bench", "track": seq, "person_id": None, "name": None, "distance": 0.9, "confidence": 0.1,
            "first_seen": "2026-12-03T10:00:00+00:00", "last_seen": "2026-12-03T10:00:01+00:00",
            "box": {"left": 1, "top": 2, "width": 60, "height": 70}, "match_id": seq,
        },
    )  # fmt: skip


def hub_consumer(bus: Any, received: Received) -> Callable[[], None]:
    subscription = bus.hub.subscribe()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            e = subscription.get(0.1)
            if e is not None:
                received(e.data["track"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return lambda: (stop.set(), thread.join(), subscription.close())  # type: ignore[func-returns-value]


def nats_consumer(prefix: str, received: Received) -> Callable[[], None]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> Any:
        nc = await nats.connect("nats://127.0.0.1:4222")

        async def on_message(message: Any) -> None:
            received(json.loads(message.data)["track"])

        await nc.subscribe(f"{prefix}.>", cb=on_message)
        await nc.flush()
        return nc

    nc = asyncio.run_coroutine_threadsafe(start(), loop).result(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(_delete_stream(nc, stream_name(prefix)), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    return stop


async def _delete_stream(nc: Any, name: str) -> None:
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def redis_consumer(prefix: str, received: Received) -> Callable[[], None]:
    client = redis.Redis()
    stop = threading.Event()

    def run() -> None:
        last = "$"
        while not stop.is_set():
            for _, entries in client.xread({prefix: last}, block=200) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    received(json.loads(fields[b"data"])["track"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join()
        client.delete(prefix)
        client.close()

    return close


def mqtt_consumer(prefix: str, received: Received) -> Callable[[], None]:
    base = prefix.replace(".", "/")
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(f"{base}/appeared", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, m: received(json.loads(m.payload)["track"])
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    subscribed.wait(10)

    def close() -> None:
        client.publish(f"{base}/availability", b"", qos=1, retain=True).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()

    return close


def webhook_consumer(received: Received) -> tuple[str, Callable[[], None]]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received(json.loads(body)["track"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook", lambda: (server.shutdown(), server.server_close())  # type: ignore[func-returns-value]


def measure(name: str, events: int, rate: float) -> dict[str, Any]:
    prefix = f"facegate.bench{uuid.uuid4().hex[:8]}"
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    lock = threading.Lock()

    def received(track: int) -> None:
        now = time.perf_counter()
        with lock:
            got.setdefault(track, now)

    settings: dict[str, Any] = {"prefix": prefix}
    stop_consumer: Callable[[], None] | None = None
    if name == "webhook":
        url, stop_consumer = webhook_consumer(received)
        settings.update(webhooks=[url], webhook_secret="bench")
    elif name != "hub":
        settings["type"] = name
    bus = build_event_bus(EventsSettings(**settings))
    bus.open()
    if name == "hub":
        stop_consumer = hub_consumer(bus, received)
    elif name == "nats":
        bus.publish(event(-1))  # creates the stream before the subscriber listens to its subjects
        time.sleep(1.0)
        stop_consumer = nats_consumer(prefix, received)
    elif name == "redis":
        stop_consumer = redis_consumer(prefix, received)
    elif name == "mqtt":
        stop_consumer = mqtt_consumer(prefix, received)
    time.sleep(1.0)  # connected, subscribed
    publish_cost: list[float] = []
    started = time.perf_counter()
    for seq in range(events):
        target = started + seq / rate
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.005, target - now))
        e = event(seq)
        t0 = time.perf_counter()
        sent[seq] = t0
        bus.publish(e)
        publish_cost.append(time.perf_counter() - t0)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and len([s for s in got if s >= 0]) < events:
        time.sleep(0.05)
    bus.close()
    assert stop_consumer is not None
    stop_consumer()
    latencies = sorted(got[s] - sent[s] for s in sent if s in got)
    stats = bus.stats()[-1] if name != "hub" else bus.stats()[0]
    return {
        "backend": name,
        "events": events,
        "received": len(latencies),
        "latency_ms": _summary(latencies),
        "publish_call_us": {k: round(v * 1000, 1) for k, v in _summary(sorted(publish_cost)).items()},
        "counts": {"published": stats.published, "dropped": stats.dropped, "failed": stats.failed},
    }


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def q(p: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(p * len(values)))], 2)

    return {
        "p50": q(0.5),
        "p95": q(0.95),
        "p99": q(0.99),
        "max": q(1.0),
        "mean": round(1000 * statistics.mean(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--backends", default="hub,nats,redis,mqtt,webhook")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    results = [measure(name, args.events, args.rate) for name in args.backends.split(",")]
    for r in results:
        print(json.dumps(r))
    if args.output:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        args.output.write_text(
            json.dumps(
                {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "commit": commit,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_average": os.getloadavg()},
                    "events": args.events,
                    "rate_per_second": args.rate,
                    "results": results,
                },
                indent=1,
            )
            + "\n"
        )  # fmt: skip


if __name__ == "__main__":
    main()
