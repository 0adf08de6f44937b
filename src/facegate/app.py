"""create_app(settings) -> FastAPI. The only place routers are included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from facegate import __version__
from facegate.api import compare, enroll, health, identify, matches, people, telemetry
from facegate.api.errors import install_error_handlers
from facegate.api.limits import BodySizeLimit
from facegate.config import Settings
from facegate.services.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. Pass an already opened `runtime` to share one across apps (tests); otherwise the
    lifespan opens one from `settings` and closes it on shutdown."""
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        owned = Runtime(settings)
        await run_in_threadpool(owned.open)
        app.state.runtime = owned
        try:
            yield
        finally:
            await run_in_threadpool(owned.close)

    app = FastAPI(
        title="facegate",
        version=__version__,
        summary="Enroll people from photos; identify them in photos and video.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    for router in (
        health.router,
        enroll.router,
        identify.router,
        people.router,
        matches.router,
        compare.router,
        telemetry.router,
    ):
        app.include_router(router)

    @app.middleware("http")
    async def record_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        rt: Runtime | None = getattr(request.app.state, "runtime", None)
        if rt is not None:
            rt.telemetry.requests.labels(request.method, route, str(response.status_code)).inc()
            rt.telemetry.request_seconds.labels(route).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_upload_bytes)
    return app
