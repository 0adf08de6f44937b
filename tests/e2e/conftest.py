"""End-to-end fixtures: real `facegate serve`, `facegate migrate` and `facegate enroll` child processes on the
embedded default (SQLite + files) or on the scale-out deployment (PostgreSQL + pgvector, S3 on moto).

Every child runs in its own process group, so stopping (or SIGKILLing) it takes its engine workers along, and
writes its output to a file; the tail of every log of a failed test is attached to the test's report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

# The console script: `python -m facegate.cli` imports the module and exits 0 without doing anything (the
# module has no `__main__` guard), so it cannot stand in for `facegate`.
FACEGATE = str(Path(sys.executable).with_name("facegate"))
READY_TIMEOUT = 60.0
# The embeddings the default (fused) engine stores for each enrolled photo.
PHOTO_EMBEDDINGS = ("opencv", "dlib")
LOG_TAIL = 6000

_LOGS = pytest.StashKey[dict[str, Path]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """A failed test's report gets the tail of every child process log open at the time."""
    report = yield
    if report.failed:
        for name, path in item.session.stash.get(_LOGS, {}).items():
            body = path.read_text(errors="replace")[-LOG_TAIL:] if path.exists() else "(no output)"
            report.sections.append((f"{name} ({path})", body))
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


ADMIN_KEY = "fg_e2e-admin-key-0123456789abcdefghij"


def child_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment (AWS test credentials included) without any FACEGATE_* of the developer's,
    plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update(
        FACEGATE_DATA_DIR=str(data_dir),
        FACEGATE_WORKERS="1",
        # The deployment's admin key, stored (hashed) on first start; clients send it.
        FACEGATE_AUTH__BOOTSTRAP_KEY=ADMIN_KEY,
        FACEGATE_LOG_LEVEL="info",
        COLUMNS="200",  # rich wraps the CLI's summary lines at the terminal width
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers={"X-API-Key": ADMIN_KEY})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Finished:
    returncode: int
    output: str
    seconds: float


class Processes:
    """Starts facegate child processes and always stops them (`close`), whatever the test did."""

    def __init__(self, root: Path, logs: dict[str, Path]) -> None:
        self.root = root
        self._logs = logs
        self._children: list[subprocess.Popen[bytes]] = []
        self._mine: list[str] = []

    def _log_path(self, name: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{name}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.root / f"{name}-{n}.log"
        key = f"{name} log" if n == 1 else f"{name} log #{n}"
        self._logs[key] = path
        self._mine.append(key)
        return path

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self._log_path(name)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [FACEGATE, *args],
                env=env,
                cwd=self.root,  # no stray .env file of the checkout applies
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children.append(process)
        return process, log_path

    def run(self, name: str, args: list[str], env: dict[str, str], *, timeout: float = 120.0) -> Finished:
        started = time.monotonic()
        process, log_path = self.spawn(name, args, env)
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            pytest.fail(f"`facegate {' '.join(args)}` did not finish within {timeout:.0f} s")
        return Finished(returncode, log_path.read_text(errors="replace"), time.monotonic() - started)

    def start_server(self, name: str, env: dict[str, str], *, wait: bool = True) -> Server:
        port = free_port()
        process, log_path = self.spawn(name, ["serve", "--host", "127.0.0.1", "--port", str(port)], env)
        server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
        if wait:
            self.wait_ready(server)
        return server

    def wait_ready(self, server: Server, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=server.url, timeout=5.0) as client:
            while True:
                if server.process.poll() is not None:
                    pytest.fail(f"{server.name} exited with {server.process.returncode} before it was ready")
                try:
                    if client.get("/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{server.name} was not ready within {timeout:.0f} s")
                time.sleep(0.1)

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its whole group (its engine workers), as a container kill would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        self.kill(process)  # whatever is left of the group (a worker orphaned by a crash, say)

    def close(self) -> None:
        for process in self._children:
            self.stop(process)
        for key in self._mine:
            self._logs.pop(key, None)


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """facegate child processes of one test; all stopped at teardown."""
    procs = Processes(tmp_path / "logs", request.session.stash.setdefault(_LOGS, {}))
    try:
        yield procs
    finally:
        procs.close()


def module_processes(request: pytest.FixtureRequest, root: Path) -> Processes:
    """Processes for a module-scoped fixture (the caller closes them)."""
    return Processes(root, request.session.stash.setdefault(_LOGS, {}))


# --- Deployments: where a set of processes keeps its data, and what is in it. ---------------------------


def new_pg_database(socket_dir: Path) -> str:
    """A new, empty database on the session's PostgreSQL, as a SQLAlchemy URL."""
    import psycopg

    name = f"e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"host={socket_dir} dbname=postgres user=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@/{name}?host={socket_dir}"


def new_bucket(endpoint: str) -> str:
    import boto3

    bucket = f"facegate-e2e-{uuid.uuid4().hex[:16]}"
    boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return bucket


@dataclass
class StoreSnapshot:
    """What the database holds, read with SQL directly (not through facegate)."""

    people: dict[str, str]  # id -> name
    images: list[dict[str, Any]]  # id, person_id, blob_key, sha256, filename
    faces: list[dict[str, Any]]  # id, person_id, image_id, engine (the default engine stores two per photo)
    matches: list[dict[str, Any]]  # id, person_id, crop_key
    pending_blobs: int

    @property
    def blob_keys(self) -> set[str]:
        return {i["blob_key"] for i in self.images} | {m["crop_key"] for m in self.matches if m["crop_key"]}

    def match_crops(self, person_id: str) -> set[str]:
        return {m["crop_key"] for m in self.matches if m["person_id"] == person_id and m["crop_key"]}


@dataclass
class Deployment:
    """The settings every process of one deployment shares, and direct access to its database and blobs."""

    env: dict[str, str]
    database_url: str
    blob_root: Path | None = None  # files
    bucket: str | None = None  # S3
    endpoint: str | None = None
    prefix: str = "facegate/"
    _s3: Any = field(default=None, repr=False)
    _db: Engine | None = field(default=None, repr=False)

    def pending_blobs(self) -> int:
        """Rows in pending_blobs now (0 while the schema does not exist yet); cheap enough to poll."""
        if self._db is None:
            self._db = create_engine(self.database_url, poolclass=NullPool)
        try:
            with self._db.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM pending_blobs")).scalar_one())
        except DBAPIError:
            return 0

    def snapshot(self) -> StoreSnapshot:
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                people = {r.id: r.name for r in conn.execute(text("SELECT id, name FROM people"))}
                images = [
                    dict(r._mapping)
                    for r in conn.execute(text("SELECT id, person_id, blob_key, sha256, filename FROM images"))
                ]
                faces = [
                    dict(r._mapping) for r in conn.execute(text("SELECT id, person_id, image_id, engine FROM faces"))
                ]
                matches = [dict(r._mapping) for r in conn.execute(text("SELECT id, person_id, crop_key FROM matches"))]
                pending = int(conn.execute(text("SELECT count(*) FROM pending_blobs")).scalar_one())
        finally:
            engine.dispose()
        return StoreSnapshot(people, images, faces, matches, pending)

    def stored_blobs(self) -> set[str]:
        """Every blob key actually present: every file under the blob root (temporary files included), or
        every object under the bucket's prefix."""
        if self.blob_root is not None:
            if not self.blob_root.exists():
                return set()
            return {p.relative_to(self.blob_root).as_posix() for p in self.blob_root.rglob("*") if p.is_file()}
        if self._s3 is None:
            import boto3

            self._s3 = boto3.session.Session().client("s3", endpoint_url=self.endpoint)
        keys: set[str] = set()
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys.update(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        return keys

    def assert_consistent(self) -> StoreSnapshot:
        """Store and blobs agree: every row's blob exists, no blob is unreferenced (temporary files count),
        nothing is left pending, every person has an image and a face, no photo is stored twice for a person."""
        snap = self.snapshot()
        stored = self.stored_blobs()
        missing = snap.blob_keys - stored
        assert not missing, f"rows point at {len(missing)} missing blobs: {sorted(missing)[:10]}"
        orphans = stored - snap.blob_keys
        assert not orphans, f"{len(orphans)} blobs no row references: {sorted(orphans)[:10]}"
        assert snap.pending_blobs == 0, f"{snap.pending_blobs} pending_blobs rows left unsettled"
        with_images = {i["person_id"] for i in snap.images}
        with_faces = {f["person_id"] for f in snap.faces}
        assert set(snap.people) <= with_images, "a person without images"
        assert set(snap.people) <= with_faces, "a person without faces"
        assert {i["id"] for i in snap.images} <= {f["image_id"] for f in snap.faces}, "an image without a face"
        # Every photo has its whole set of embeddings (the default fused engine: SFace and dlib), each once.
        per_image = Counter((f["image_id"], f["engine"]) for f in snap.faces)
        assert set(per_image.values()) <= {1}, "a photo embedded twice by one engine"
        sets = Counter(frozenset(e for (i, e) in per_image if i == image["id"]) for image in snap.images)
        assert set(sets) <= {frozenset(PHOTO_EMBEDDINGS)}, f"photos with a partial set of embeddings: {sets}"
        twice = [k for k, n in Counter((i["person_id"], i["sha256"]) for i in snap.images).items() if n > 1]
        assert not twice, f"photos stored twice for one person: {twice[:5]}"
        return snap


def files_deployment(data_dir: Path, **settings: str) -> Deployment:
    """The embedded default: SQLite and files under the data directory."""
    return Deployment(
        env=child_env(data_dir, **settings),
        database_url=f"sqlite:///{data_dir / 'facegate.db'}",
        blob_root=data_dir / "blobs",
    )


def shared_deployment(data_dir: Path, database_url: str, endpoint: str, bucket: str, **settings: str) -> Deployment:
    """The scale-out deployment: PostgreSQL (migrated explicitly) and one S3 bucket."""
    env = child_env(
        data_dir,
        FACEGATE_DATABASE__URL=database_url,
        FACEGATE_BLOBS__TYPE="s3",
        FACEGATE_BLOBS__BUCKET=bucket,
        FACEGATE_BLOBS__PREFIX="facegate/",
        FACEGATE_BLOBS__ENDPOINT_URL=endpoint,
        **settings,
    )
    return Deployment(env=env, database_url=database_url, bucket=bucket, endpoint=endpoint)


@pytest.fixture(scope="session")
def pg_unsynced(pg_server: Path) -> Path:
    """The session's PostgreSQL (started without fsync by tests/conftest.py); yields the socket directory."""
    return pg_server


# --- Talking to a server. ------------------------------------------------------------------------------

MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def smallest(photos: list[Path]) -> Path:
    """The photo of fewest bytes: the quickest to decode (the dev set has 2-5 MP photos)."""
    return min(photos, key=lambda p: (p.stat().st_size, p.name))


def upload(photo: Path) -> tuple[str, bytes, str]:
    return (photo.name, photo.read_bytes(), MIME.get(photo.suffix.lower(), "application/octet-stream"))


def enroll(client: httpx.Client, name: str, photos: list[Path]) -> httpx.Response:
    """POST /api/v1/enroll as a well-behaved client: a busy engine's 503 is retried after its Retry-After."""
    for _ in range(30):
        response = client.post("/api/v1/enroll", data={"name": name}, files=[("image", upload(p)) for p in photos])
        if response.status_code != 503 or "Retry-After" not in response.headers:
            return response
        time.sleep(float(response.headers["Retry-After"]))
    return response


def identify(client: httpx.Client, photo: Path) -> dict[str, Any]:
    response = client.post("/api/v1/identify", files={"image": upload(photo)})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def best_match(client: httpx.Client, photo: Path) -> dict[str, Any] | None:
    """The match of the largest face in the photo (faces come largest first), or None."""
    faces = identify(client, photo)["faces"]
    assert faces, f"no face found in {photo}"
    match: dict[str, Any] | None = faces[0]["match"]
    return match


def index_and_store_faces(client: httpx.Client) -> tuple[int, int]:
    """Faces in the server's index and photos in the store, from its telemetry: one indexed (SFace) embedding
    per photo."""
    telemetry = client.get("/api/v1/telemetry").json()
    return telemetry["index"]["faces"], telemetry["store"]["images"]


def all_people(client: httpx.Client, name: str | None = None) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    total = 0
    while True:
        params: dict[str, Any] = {"limit": 500, "offset": len(items)}
        if name:
            params["name"] = name
        response = client.get("/api/v1/people", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        total = page["total"]
        items += page["items"]
        if not page["items"] or len(items) >= total:
            return items, total
