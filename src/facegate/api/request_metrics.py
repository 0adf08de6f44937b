"""Count and time every HTTP request by route template and status (a pure ASGI layer: cheap, and it sees
responses made by the layers inside it, such as the body-size 413, and requests that crash)."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facegate.services.telemetry import Telemetry


class RequestMetrics:
    def __init__(self, app: ASGIApp, telemetry: Callable[[], Telemetry | None]) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            telemetry = self.telemetry()
            if telemetry is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                telemetry.requests.labels(scope["method"], route, str(status)).inc()
                telemetry.request_seconds.labels(route).observe(time.perf_counter() - started)
