"""Shared fixtures: real engines (loaded once per session), a fresh store per test, real HTTP via ASGI."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facegate.app import create_app
from facegate.config import DlibEngineSettings, OpenCVEngineSettings, Settings
from facegate.services.runtime import Runtime
from facegate.vision.pool import EnginePool

REPO = Path(__file__).resolve().parents[1]


def _dev_dir() -> Path:
    """FACEGATE_DEV_FACES, else ../shared/faces/dev beside the checkout, else the workplace's copy."""
    configured = os.environ.get("FACEGATE_DEV_FACES")
    if configured:
        return Path(configured)
    beside = REPO.parent / "shared" / "faces" / "dev"
    return beside if beside.is_dir() else Path("/work/shared/faces/dev")


@pytest.fixture(scope="session")
def dev() -> Path:
    """The development face set (../shared/faces/dev), used in place."""
    path = _dev_dir()
    if not (path / "pairs.csv").is_file():
        pytest.fail(f"Face set not found at {path}; set FACEGATE_DEV_FACES to its folder.")
    return path


@pytest.fixture(scope="session")
def identities(dev: Path) -> dict[str, list[Path]]:
    """identity -> its photos, from identities.csv (so the set can grow)."""
    result: dict[str, list[Path]] = {}
    with (dev / "identities.csv").open() as fh:
        for row in csv.DictReader(fh):
            folder = dev / row["identity"]
            result[row["identity"]] = sorted(p for p in folder.iterdir() if p.is_file())
    return result


@pytest.fixture(scope="session")
def opencv_pool() -> Iterator[EnginePool]:
    pool = EnginePool(OpenCVEngineSettings(), workers=2)
    pool.open()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def dlib_pool() -> Iterator[EnginePool]:
    pool = EnginePool(DlibEngineSettings(), workers=2)
    pool.open()
    yield pool
    pool.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", workers=2)


@pytest.fixture
def runtime(settings: Settings, opencv_pool: EnginePool) -> Iterator[Runtime]:
    rt = Runtime(settings, engine=opencv_pool)
    rt.open()
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime)) as test_client:
        yield test_client
