"""The least a FastAPI identify service can do on this stack: the floor under facegate's identify overhead.

One route, POST /api/v1/identify (facegate's path) with a multipart `image`, run like `facegate serve` runs its app (uvicorn, h11, a sync
route in the thread pool) and answered by the same engine pool (`facegate.vision.pool.EnginePool`, the same
settings, workers and limits as `facegate serve` reads from the environment), with the bare engine's per-photo
work (`analyze` without crops). No API key, no database, no index search, no history, no crop file, no metrics:
the JSON answer is the number of faces. Whatever share of the bare engine this reaches is the most any service
built from FastAPI, uvicorn and the pool can reach here with 2 clients; bench/identify_floor.py measures it beside
facegate and the bare engine.

    PYTHONPATH=bench FACEGATE_ENGINE__TYPE=opencv uvicorn facegate_bench.floor_app:app --http h11
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, UploadFile

from facegate.config import Settings
from facegate.vision.pool import EnginePool

settings = Settings()
pool = EnginePool(settings.engine, settings.worker_count, limits=settings.limits)


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    pool.open()
    try:
        yield
    finally:
        pool.close()


app = FastAPI(lifespan=_lifespan)


@app.get("/ready")
def ready() -> dict[str, bool]:
    return {"ready": pool.ready()}


@app.post("/api/v1/identify")
def identify(image: Annotated[UploadFile, File()]) -> dict[str, int]:
    analysis = pool.analyze(
        image.file.read(),
        max_pixels=settings.limits.max_image_pixels,
        max_faces=settings.identify.max_faces,
        crops=False,
        secondary="input",
    )
    return {"faces": len(analysis.faces)}
