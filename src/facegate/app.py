"""create_app(settings) -> FastAPI. The only place routers are included."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from facegate import __version__
from facegate.api import compare, enroll, health, identify, matches, people, telemetry
from facegate.api.errors import install_error_handlers
from facegate.api.limits import BodySizeLimit
from facegate.api.request_metrics import RequestMetrics
from facegate.config import Settings
from facegate.services import maintenance
from facegate.services.runtime import Runtime
from facegate.services.telemetry import Telemetry

log = logging.getLogger(__name__)


async def _maintain(rt: Runtime) -> None:
    """Retention purge, pending-blob sweep and change-log trim, every `retention.interval_seconds`."""
    while True:
        await asyncio.sleep(rt.settings.retention.interval_seconds)
        try:
            await run_in_threadpool(maintenance.run, rt)
        except Exception:
            log.exception("maintenance failed; retrying at the next interval")


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
        upkeep = asyncio.create_task(_maintain(owned))
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
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

    def current_telemetry() -> Telemetry | None:
        rt: Runtime | None = getattr(app.state, "runtime", None)
        return rt.telemetry if rt is not None else None

    # The last added runs first: metrics see the size limit's 413s.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_upload_bytes)
    app.add_middleware(RequestMetrics, telemetry=current_telemetry)
    return app
