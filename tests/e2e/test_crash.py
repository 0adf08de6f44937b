"""kill -9 in the middle of enrollments, then a restart: store, blobs and index agree again, nothing a client
saw acknowledged is lost, and a bulk `facegate enroll` resumes where the killed run stopped."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    Deployment,
    Processes,
    StoreSnapshot,
    best_match,
    enroll,
    files_deployment,
    new_bucket,
    new_pg_database,
    shared_deployment,
    smallest,
)

pytestmark = pytest.mark.slow

# The restarted process settles everything the dead one left pending (normally it waits this long in case
# the entry belongs to a request still in flight on another replica).
SETTLE_AT_START = {"FACEGATE_RETENTION__PENDING_BLOB_GRACE_SECONDS": "0"}
WINDOW_WAIT = 10.0


@pytest.fixture(params=["sqlite-files", "postgresql-s3-hnsw"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    if request.param == "sqlite-files":
        return files_deployment(tmp_path / "data")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    url = new_pg_database(request.getfixturevalue("pg_unsynced"))
    # The service migrates by itself when told to (the other documented way; test_replicas runs `facegate
    # migrate`), which saves a process start here.
    return shared_deployment(
        tmp_path / "data",
        url,
        endpoint,
        new_bucket(endpoint),
        FACEGATE_INDEX__TYPE="hnsw",
        FACEGATE_DATABASE__AUTO_MIGRATE="true",
    )


def test_server_killed_during_enrollments(
    deployment: Deployment, processes: Processes, identities: dict[str, list[Path]]
) -> None:
    server = processes.start_server("server", deployment.env)
    # One person per identity, so each stored person has exactly one right answer for identify.
    jobs = [(identity, smallest(photos)) for identity, photos in sorted(identities.items())]
    photo_of = dict(jobs)
    attempted: set[str] = set()
    acknowledged: dict[str, str] = {}  # name -> person id, from 201 answers
    refused: dict[str, int] = {}
    lock = threading.Lock()
    threads = 3

    def client_thread(k: int) -> None:
        with server.client(timeout=30) as client:
            for name, photo in jobs[k::threads]:
                with lock:
                    attempted.add(name)
                try:
                    response = enroll(client, name, [photo])
                except httpx.TransportError:
                    return  # the server is gone
                with lock:
                    if response.status_code == 201:
                        acknowledged[name] = response.json()["person"]["id"]
                    else:
                        refused[name] = response.status_code

    workers = [threading.Thread(target=client_thread, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 5 and time.monotonic() < deadline and any(w.is_alive() for w in workers):
        time.sleep(0.01)
    kill_in_write_window(
        deployment, server.process, processes, lambda: len(acknowledged) + len(refused) >= len(jobs) - 4
    )
    for worker in workers:
        worker.join(timeout=60)
    assert len(acknowledged) >= 5, f"too few enrollments before the kill: {acknowledged}, refused {refused}"
    assert len(acknowledged) + len(refused) < len(jobs), "the stream had finished before the kill"
    assert set(refused.values()) <= {422}, refused  # a photo without a usable face stores nothing

    left = deployment.snapshot()
    left_blobs = deployment.stored_blobs()
    dead_process_state = (
        f"left by the killed server: {left.pending_blobs} pending blobs, "
        f"{len(left_blobs - left.blob_keys)} unreferenced blobs"
    )

    restarted = processes.start_server("restarted", {**deployment.env, **SETTLE_AT_START})
    snap = deployment.assert_consistent()
    for name, person_id in acknowledged.items():
        assert snap.people.get(person_id) == name, f"acknowledged enrollment of {name} is lost ({dead_process_state})"
    assert all(n == 1 for n in Counter(snap.people.values()).values())
    # A request the kill cut off may have committed without answering; nothing else may show up.
    assert set(snap.people.values()) <= attempted

    with restarted.client() as client:
        telemetry = client.get("/api/v1/telemetry").json()
        assert telemetry["index"]["faces"] == telemetry["store"]["images"] == len(snap.images)
        for person_id, name in snap.people.items():
            match = best_match(client, photo_of[name])
            assert match is not None and match["person_id"] == person_id, f"{name}: {match}"
    deployment.assert_consistent()
    print(f"{len(acknowledged)} acknowledged, {len(snap.people)} stored; {dead_process_state}")


def kill_in_write_window(
    deployment: Deployment, process: subprocess.Popen[bytes], processes: Processes, running_out: Callable[[], bool]
) -> None:
    """SIGKILL the process, preferably while a blob write is in flight (recorded as pending, rows not yet
    committed), where a crash can leave orphans; without one in WINDOW_WAIT seconds, or once `running_out()`
    of work to interrupt, anyway."""
    deadline = time.monotonic() + WINDOW_WAIT
    while process.poll() is None and time.monotonic() < deadline and not running_out():
        if deployment.pending_blobs():
            break
        time.sleep(0.005)
    processes.kill(process)


def _image_rows(database: Path) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM images").fetchone()[0])
    except sqlite3.Error:  # not created or not migrated yet
        return 0


def test_bulk_enroll_killed_then_resumed(
    processes: Processes, identities: dict[str, list[Path]], tmp_path: Path
) -> None:
    # 12 people, their 3 smallest photos each (quick to decode), linked from the dev set in place. Enrolled two
    # photos per request, so the kill can also leave a person with only part of their photos.
    people = tmp_path / "people"
    chosen = sorted(identities)[:12]
    photos = 0
    for identity in chosen:
        (people / identity).mkdir(parents=True)
        for photo in sorted(identities[identity], key=lambda p: p.stat().st_size)[:3]:
            (people / identity / photo.name).symlink_to(photo)
            photos += 1

    batches = {"FACEGATE_LIMITS__MAX_IMAGES_PER_ENROLL": "2"}
    deployment = files_deployment(tmp_path / "data", **batches)
    # What an uninterrupted run enrolls, for comparison; beside the killed run (2 cores, 1 engine worker each).
    reference = files_deployment(tmp_path / "reference", **batches)
    uninterrupted, reference_log = processes.spawn("enroll-reference", ["enroll", str(people)], reference.env)
    killed, _ = processes.spawn("enroll-killed", ["enroll", str(people)], deployment.env)
    database = tmp_path / "data" / "facegate.db"
    deadline = time.monotonic() + 60
    while _image_rows(database) < 3:
        assert killed.poll() is None, "the bulk run finished (or failed) before it could be killed"
        assert time.monotonic() < deadline, "the bulk run made no progress within 60 s"
        time.sleep(0.02)
    kill_in_write_window(deployment, killed, processes, lambda: _image_rows(database) >= photos // 2)
    assert killed.returncode == -signal.SIGKILL, "the bulk run finished before it was killed"
    before = deployment.snapshot()
    assert 0 < len(before.images) < photos
    orphans = deployment.stored_blobs() - before.blob_keys

    resumed = processes.run("enroll-resumed", ["enroll", str(people)], {**deployment.env, **SETTLE_AT_START})
    assert resumed.returncode == 0, resumed.output
    snap = deployment.assert_consistent()

    # Resumed, not restarted: the killed run's people and photos are kept (a person cut off between two
    # requests gets the rest of their photos, not a second person row), and the second run counts only
    # what it added.
    assert {i["id"] for i in before.images} <= {i["id"] for i in snap.images}
    for person_id, name in before.people.items():
        assert snap.people.get(person_id) == name
    photos_before = Counter(i["person_id"] for i in before.images)
    photos_after = Counter(i["person_id"] for i in snap.images)
    partial = sum(1 for person_id in before.people if photos_before[person_id] < photos_after[person_id])
    added = re.search(r"Enrolled (\d+) new faces", resumed.output)
    assert added, resumed.output
    assert int(added.group(1)) == len(snap.images) - len(before.images)

    # Exactly the people and photos an uninterrupted run enrolls, each once.
    assert uninterrupted.wait(timeout=120) == 0, reference_log.read_text()
    ref = reference.assert_consistent()
    assert sorted(snap.people.values()) == sorted(ref.people.values())
    assert len(set(snap.people.values())) == len(snap.people)

    def enrolled(s: StoreSnapshot) -> Counter[tuple[str, str]]:
        return Counter((s.people[i["person_id"]], i["sha256"]) for i in s.images)

    assert enrolled(snap) == enrolled(ref)
    print(
        f"{photos} photos of {len(chosen)} people: {len(before.images)} enrolled before the kill (which left "
        f"{before.pending_blobs} pending, {len(orphans)} unreferenced blobs, {partial} people part-enrolled), "
        f"{added.group(1)} on resume ({resumed.seconds:.1f} s); {len(ref.images)} by an uninterrupted run"
    )
