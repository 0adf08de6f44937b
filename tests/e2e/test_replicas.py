"""Two `facegate serve` replicas on one PostgreSQL database and one S3 bucket, as the scale-out deployment
runs them: what one replica writes, the other serves, with either index (pgvector searches the database;
hnsw keeps an in-process index that follows the store's change log)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e.conftest import (
    Deployment,
    Processes,
    Server,
    all_people,
    best_match,
    enroll,
    identify,
    index_and_store_faces,
    module_processes,
    new_bucket,
    new_pg_database,
    shared_deployment,
    smallest,
)

pytestmark = pytest.mark.slow

# An in-process index picks up another replica's writes at its next sync (FACEGATE_INDEX__SYNC_SECONDS=0.2).
HNSW_SYNC_WAIT = 2.0
T = TypeVar("T")


@dataclass
class Replicas:
    index_type: str
    deployment: Deployment
    a: Server
    b: Server

    def settle(self, check: Callable[[], T], accept: Callable[[T], bool]) -> tuple[T, int]:
        """`check()` until `accept`s it: once with pgvector (no replica state to catch up), for up to
        HNSW_SYNC_WAIT seconds with hnsw. Returns the last result and the number of tries."""
        deadline = time.monotonic() + (HNSW_SYNC_WAIT if self.index_type == "hnsw" else 0.0)
        tries = 0
        while True:
            tries += 1
            result = check()
            if accept(result) or time.monotonic() >= deadline:
                return result, tries
            time.sleep(0.1)

    def assert_index_level(self, client: httpx.Client, probe: Path) -> None:
        """The replica's index holds exactly the store's faces (an identify first: it syncs an in-process
        index with the change log)."""
        counts, tries = self.settle(
            lambda: (identify(client, probe), index_and_store_faces(client))[1], lambda c: c[0] == c[1]
        )
        assert counts[0] == counts[1], f"index faces {counts[0]} != store faces {counts[1]} after {tries} tries"


@pytest.fixture(scope="module", params=["pgvector", "hnsw"])
def replicas(
    request: pytest.FixtureRequest, pg_unsynced: Path, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """Replicas A and B (each with its own data directory) after the one explicit `facegate migrate`."""
    index_type: str = request.param
    root = tmp_path_factory.mktemp(f"replicas-{index_type}")
    settings = {"FACEGATE_INDEX__TYPE": index_type}
    if index_type == "hnsw":
        settings["FACEGATE_INDEX__SYNC_SECONDS"] = "0.2"
    deployment = shared_deployment(
        root / "migrate", new_pg_database(pg_unsynced), s3_endpoint, new_bucket(s3_endpoint), **settings
    )
    procs = module_processes(request, root / "logs")
    try:
        migrated = procs.run("migrate", ["migrate"], deployment.env)
        assert migrated.returncode == 0, migrated.output
        # Started together: model loading overlaps.
        a = procs.start_server("replica-a", {**deployment.env, "FACEGATE_DATA_DIR": str(root / "a")}, wait=False)
        b = procs.start_server("replica-b", {**deployment.env, "FACEGATE_DATA_DIR": str(root / "b")}, wait=False)
        procs.wait_ready(a)
        procs.wait_ready(b)
        yield Replicas(index_type, deployment, a, b)
    finally:
        procs.close()


def test_enrolled_on_one_replica_found_on_the_other_and_deleted_everywhere(
    replicas: Replicas, identities: dict[str, list[Path]]
) -> None:
    powell = identities["colin_powell"]
    enrolled, held_out = powell[:3], powell[-1]
    name = f"Colin Powell {uuid.uuid4().hex[:8]}"
    deployment = replicas.deployment
    with replicas.a.client() as a, replicas.b.client() as b:
        response = enroll(a, name, enrolled)
        assert response.status_code == 201, response.text
        person_id = response.json()["person"]["id"]

        # B serves what A enrolled: at once with pgvector, within the sync interval with hnsw.
        match, tries = replicas.settle(lambda: best_match(b, held_out), lambda m: m is not None)
        assert match is not None, f"B did not identify the person A enrolled ({tries} tries)"
        assert match["person_id"] == person_id
        assert match["name"] == name

        snap = deployment.snapshot()
        keys = {i["blob_key"] for i in snap.images if i["person_id"] == person_id}
        keys |= snap.match_crops(person_id)
        assert len(keys) >= len(enrolled) + 1  # the photos and B's crop of the identified face
        assert keys <= deployment.stored_blobs()

        # Deleted on B: A forgets the person (no match, not even as a candidate), the API and the bucket too.
        assert b.delete(f"/api/v1/people/{person_id}").status_code == 204

        def on_a() -> dict[str, Any]:
            faces: list[dict[str, Any]] = a.post(
                "/api/v1/identify", files={"image": (held_out.name, held_out.read_bytes(), "image/jpeg")}
            ).json()["faces"]
            return faces[0]

        face, tries = replicas.settle(on_a, lambda f: f["match"] is None)
        assert face["match"] is None, f"A still matched the deleted person after {tries} tries: {face['match']}"
        assert person_id not in {c["person_id"] for c in face["candidates"]}
        assert a.get(f"/api/v1/people/{person_id}").status_code == 404
        # The faces are gone from A's index, not only filtered out of answers by name.
        replicas.assert_index_level(a, held_out)
        assert b.get(f"/api/v1/people/{person_id}").status_code == 404
        assert not keys & deployment.stored_blobs(), "the deleted person's photos or crops are still in the bucket"
        deployment.assert_consistent()


def test_concurrent_enrollments_on_both_replicas(replicas: Replicas, identities: dict[str, list[Path]]) -> None:
    """8 client threads enroll distinct people, alternating between A and B; afterwards both replicas, the
    database and the bucket agree, and each replica identifies every one of them."""
    tag = uuid.uuid4().hex[:8]
    chosen = sorted(i for i in identities if i != "colin_powell")[:16]
    jobs = [(f"{identity} {tag}", smallest(identities[identity])) for identity in chosen]
    threads = 8
    barrier = threading.Barrier(threads)

    def client_thread(k: int) -> list[tuple[str, Path, httpx.Response]]:
        done = []
        with replicas.a.client() as a, replicas.b.client() as b:
            barrier.wait()
            for j, (name, photo) in enumerate(jobs[k::threads]):
                done.append((name, photo, enroll((a, b)[(k + j) % 2], name, [photo])))
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        results = [r for chunk in pool.map(client_thread, range(threads)) for r in chunk]
    seconds = time.monotonic() - started
    failed = [(name, r.status_code, r.text) for name, _, r in results if r.status_code != 201]
    assert not failed, failed
    enrolled = {name: (photo, r.json()["person"]["id"]) for name, photo, r in results}
    assert len(enrolled) == len(jobs)

    # Each request cleared its own pending blobs: nothing is left for a sweep, and nothing is orphaned.
    snap = replicas.deployment.assert_consistent()
    assert {snap.people[pid] for _, pid in enrolled.values()} == set(enrolled)

    with replicas.a.client() as a, replicas.b.client() as b:
        for client in (a, b):
            people, total = all_people(client, name=tag)
            assert total == len(jobs)
            assert sorted(p["name"] for p in people) == sorted(enrolled)
            assert all(p["face_count"] == 1 for p in people)
        for name, (photo, person_id) in enrolled.items():
            for replica, client in (("A", a), ("B", b)):
                match, tries = replicas.settle(partial(best_match, client, photo), lambda m: m is not None)
                assert match is not None, f"{replica} did not identify {name} ({tries} tries)"
                assert match["person_id"] == person_id, f"{replica} took {name} for {match['name']}"
        probe = jobs[0][1]
        replicas.assert_index_level(a, probe)
        replicas.assert_index_level(b, probe)
    replicas.deployment.assert_consistent()
    print(f"{len(jobs)} concurrent enrollments over 2 replicas ({replicas.index_type}) in {seconds:.1f} s")


def test_server_refuses_an_unmigrated_database(processes: Processes, pg_unsynced: Path, tmp_path: Path) -> None:
    """On PostgreSQL the service does not migrate by itself: it exits non-zero and names the step to run."""
    deployment = shared_deployment(tmp_path / "data", new_pg_database(pg_unsynced), "http://unused.invalid", "unused")
    env = {**deployment.env, "FACEGATE_BLOBS__TYPE": "files"}
    server = processes.start_server("unmigrated", env, wait=False)
    try:
        returncode = server.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the service kept running on an unmigrated database")
    assert returncode != 0
    assert "facegate migrate" in server.log()
