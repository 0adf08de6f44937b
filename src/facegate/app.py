"""create_app(settings) -> FastAPI. The only place routers are included."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from facegate import __version__
from facegate.api import audit, compare, docs, enroll, health, identify, keys, matches, openapi, people, telemetry, ui
from facegate.api import events as events_api
from facegate.api import search as search_api
from facegate.api import streams as streams_api
from facegate.api import suggestions as suggestions_api
from facegate.api.docs import SWAGGER_ASSETS
from facegate.api.errors import install_error_handlers
from facegate.api.limits import BodySizeLimit
from facegate.api.rate_limit import RateLimiter
from facegate.api.request_metrics import RequestMetrics
from facegate.api.security_headers import SecurityHeaders
from facegate.config import Settings
from facegate.services import keys as keys_service
from facegate.services import maintenance
from facegate.services import streams as streams_service
from facegate.services import suggestions as suggestions_service
from facegate.services.runtime import Runtime
from facegate.services.telemetry import Telemetry
from facegate.stream.manager import StreamManager, default_worker_id, pipelines

log = logging.getLogger(__name__)


async def _maintain(rt: Runtime) -> None:
    """Retention purge, pending-blob sweep and change-log trim, every `retention.interval_seconds`."""
    while True:
        await asyncio.sleep(rt.settings.retention.interval_seconds)
        try:
            await run_in_threadpool(maintenance.run, rt)
        except Exception:
            log.exception("maintenance failed; retrying at the next interval")


async def _group_unknowns(rt: Runtime) -> None:
    """Suggested people: place the unknown faces identify recorded since the last pass, every
    `suggestions.catch_up_seconds` (off the request path), and regroup them all every `regroup_seconds`."""
    grouping = suggestions_service.Grouping.of(rt)
    settings = rt.settings.suggestions
    loop = asyncio.get_running_loop()
    regrouped = loop.time()
    while True:
        await asyncio.sleep(settings.catch_up_seconds)
        try:
            if loop.time() - regrouped >= settings.regroup_seconds:
                regrouped = loop.time()
                await run_in_threadpool(grouping.regroup)
            else:
                await run_in_threadpool(grouping.catch_up)
        except Exception:
            log.exception("grouping unknown faces failed; retrying at the next interval")


@asynccontextmanager
async def _run_streams(app: FastAPI, rt: Runtime) -> AsyncIterator[None]:
    """The embedded default runs every stream in this process; a deployment of `facegate worker`s turns that off
    (FACEGATE_STREAMS__RUN_IN_SERVER=false) and this server only adds, lists and removes them."""
    manager = None
    if rt.settings.streams.run_in_server:
        manager = StreamManager(rt, worker=f"server-{default_worker_id()}", runner=pipelines(rt))
        manager.start()
    app.state.streams = manager
    rt.telemetry.watch_streams(lambda: streams_service.telemetry(rt, manager))
    try:
        yield
    finally:
        app.state.streams = None
        if manager is not None:
            await run_in_threadpool(manager.close)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. Pass an already opened `runtime` to share one across apps (tests); otherwise the
    lifespan opens one from `settings` and closes it on shutdown."""
    settings = settings or (runtime.settings if runtime else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            async with _run_streams(app, runtime):
                yield
            return
        owned = Runtime(settings)
        await run_in_threadpool(owned.open)
        app.state.runtime = owned
        _announce(await run_in_threadpool(keys_service.ensure_bootstrap_key, owned), owned.settings)
        upkeep = asyncio.create_task(_maintain(owned))
        grouping = asyncio.create_task(_group_unknowns(owned)) if owned.settings.suggestions.enabled else None
        try:
            async with _run_streams(app, owned):
                yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            if grouping is not None:
                grouping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await grouping
            await run_in_threadpool(owned.close)

    app = FastAPI(
        title="facegate",
        version=__version__,
        summary="Enroll people from photos; identify them in photos and video.",
        lifespan=lifespan,
        # Served by api/docs.py: behind a key unless configured public, with assets from the package.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    install_error_handlers(app)
    app.state.rate_limiter = RateLimiter(settings.rate_limit)
    # Set when the server starts shutting down (`run_server`): open event streams (SSE) end then, or the graceful
    # shutdown would wait for clients that never hang up.
    app.state.stopping = threading.Event()

    for router in (
        health.router,
        docs.router,
        keys.router,
        audit.router,
        enroll.router,
        identify.router,
        search_api.router,
        people.router,
        matches.router,
        compare.router,
        telemetry.router,
        streams_api.router,
        suggestions_api.router,
        events_api.router,
    ):
        app.include_router(router)
    openapi.install(app, settings)

    def current_telemetry() -> Telemetry | None:
        rt: Runtime | None = getattr(app.state, "runtime", None)
        return rt.telemetry if rt is not None else None

    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")
    if settings.ui.enabled:
        app.mount("/ui", ui.static_files(), name="ui")

    # The last added runs first: metrics see the size limit's 413s; every answer gets the security headers.
    app.add_middleware(BodySizeLimit, max_bytes=settings.limits.max_upload_bytes)
    if settings.cors.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors.origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
            expose_headers=["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
        )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, telemetry=current_telemetry)
    return app


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stopping.set()
        super().handle_exit(sig, frame)


def run_server(app: FastAPI, **config: Any) -> None:
    """Run the app with uvicorn (`config`: uvicorn.Config's arguments). On SIGINT/SIGTERM the app's long-lived
    responses end before uvicorn waits for open connections to finish."""
    _Server(uvicorn.Config(app, **config), app.state.stopping).run()


def _announce(key: str | None, settings: Settings) -> None:
    """Show a first-start admin key once, where the person who ran `facegate serve` sees it."""
    if key is None:
        return
    base = f"http://{settings.host}:{settings.port}"
    log.warning("no API key existed: created an admin key (shown once on standard output)")
    print(
        "\nNo API key existed, so an admin key was created. It is shown only this once; keep it safe:\n\n"
        f"    {key}\n\n"
        f"Use it as a header:  curl -H 'X-API-Key: <key>' {base}/api/v1/people\n"
        "Create narrower keys: facegate keys create --name NAME --scope identify\n",
        flush=True,
    )
