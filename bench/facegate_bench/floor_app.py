"""The least a FastAPI identify service can do on this stack: the floor under facegate's identify overhead.

One route, POST /api/v1/identify (facegate's path) with a multipart `image`, run as `facegate serve` runs its app
(uvicorn with h11, a sync route in the thread pool) and answered by facegate's engine pool
(`facegate.vision.pool.EnginePool`, with the engine, workers and limits `facegate serve` reads from the same
environment) doing the bare engine's work per photo: `analyze` without crops, and with the fused engine the second
descriptor of the faces listed in the form field `fused` (face indices, e.g. "0,2": the faces facegate fused, which
the bench passes on). No API key, database, index search, history, crop file or metrics: the answer is the number
of faces. The share of the bare engine this reaches is the most a service built from FastAPI, uvicorn and this pool
reaches here; the bench measures it beside facegate (interleaved.py).

    PYTHONPATH=bench FACEGATE_ENGINE__TYPE=opencv uvicorn facegate_bench.floor_app:app --http h11
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, Form, UploadFile

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
def identify(image: Annotated[UploadFile, File()], fused: Annotated[str, Form()] = "") -> dict[str, int]:
    analysis = pool.analyze(
        image.file.read(),
        max_pixels=settings.limits.max_image_pixels,
        max_faces=settings.identify.max_faces,
        crops=False,
        secondary="input",
    )
    wanted = {int(i) for i in fused.split(",") if i}
    chips = [f.secondary_input for i, f in enumerate(analysis.faces) if i in wanted and f.secondary_input is not None]
    if chips:
        pool.embed_secondary(chips)
    return {"faces": len(analysis.faces), "second_descriptors": len(chips)}
