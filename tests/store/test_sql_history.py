"""store.sql_history: match history searched by vector inside PostgreSQL (pgvector HNSW on matches.embedding),
and the store's answer on SQLite (no index: the services compare pages there)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sqlalchemy import text

from facegate.store import sql_history
from facegate.store.repository import SQLRepository
from tests.store.conftest import OpenRepository
from tests.store.test_repository import OPENCV, enroll, new_match


def _history(repo: SQLRepository, vectors: np.ndarray, *, person_id: str | None = None) -> list[int]:
    rows = [
        dataclasses.replace(new_match(person_id), embedding=v.astype("<f4").tobytes())
        for v in np.asarray(vectors, dtype=np.float32)
    ]
    return repo.add_matches(rows)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1.0 - _unit(b.astype(np.float64)) @ _unit(a.astype(np.float64))


def test_sqlite_has_no_history_index(store_url: str, open_repo: OpenRepository) -> None:
    repo = open_repo(store_url)
    _history(repo, np.ones((3, 128)))
    found = repo.history.nearest(*OPENCV, "cosine", np.ones(128, "<f4").tobytes(), within=0.5, unknown_only=False)
    if store_url.startswith("sqlite"):
        assert found is None
    else:
        assert found is not None and len(found) == 3
    assert repo.history.count(*OPENCV, unknown_only=False) == 3


def test_every_row_within_the_distance_is_found_beyond_the_first_ask(pg_url: str, open_repo: OpenRepository) -> None:
    """More rows within the distance than the first ask (100): the store asks again for more, until the farthest
    row returned is beyond it; the answer is exactly what a scan of every row gives."""
    repo = open_repo(pg_url)
    rng = np.random.default_rng(3)
    centre = _unit(rng.normal(size=128))
    near = _unit(centre + rng.normal(0.0, 0.03, (450, 128)))  # cosine ~0.05 from the centre
    far = _unit(rng.normal(size=(300, 128)))  # ~1.0
    ids = _history(repo, np.concatenate([near, far]))
    person = enroll(repo)
    named = _history(repo, near[:50], person_id=person.id)
    probe = centre.astype("<f4").tobytes()
    distances = _cosine(centre, np.concatenate([near, far, near[:50]]))
    all_ids = np.asarray(ids + named)

    found = repo.history.nearest(*OPENCV, "cosine", probe, within=0.3, unknown_only=False)
    assert found is not None
    assert {s.match_id for s in found} == set(all_ids[distances <= 0.3].tolist())
    assert len(found) == 500

    unknown = repo.history.nearest(*OPENCV, "cosine", probe, within=0.3, unknown_only=True)
    assert unknown is not None and {s.match_id for s in unknown} == set(ids[:450])
    assert all(s.person_id is None for s in unknown)
    assert np.frombuffer(unknown[0].embedding, "<f4").shape == (128,)

    top = repo.history.nearest(*OPENCV, "cosine", probe, within=0.3, unknown_only=False, limit=5)
    assert top is not None and [s.match_id for s in top] == all_ids[np.argsort(distances, kind="stable")[:5]].tolist()
    assert repo.history.nearest(*OPENCV, "cosine", probe, within=0.001, unknown_only=False) == []
    assert repo.history.count(*OPENCV, unknown_only=True) == 750
    assert repo.history.count(*OPENCV, unknown_only=False) == 800


def test_the_planner_uses_the_hnsw_index(pg_url: str, open_repo: OpenRepository) -> None:
    """The store's own statement (expression and predicate as migration 0008 wrote them) is planned on the index."""
    repo = open_repo(pg_url)
    _history(repo, np.random.default_rng(1).normal(size=(200, 128)))
    for metric, index in (("cosine", "ix_matches_embedding_opencv"), ("euclidean", "ix_matches_embedding_dlib")):
        engine = index.rsplit("_", 1)[1]
        statement = str(sql_history._statement(engine, 128, metric, unknown_only=True))
        with repo.db.engine.begin() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: the planner would scan it anyway
            plan = conn.execute(text("EXPLAIN " + statement), {"q": str([0.1] * 128), "mv": "x", "k": 5}).all()
        assert index in "\n".join(row[0] for row in plan)


def test_an_engine_name_that_cannot_be_a_predicate_is_refused(pg_url: str, open_repo: OpenRepository) -> None:
    repo = open_repo(pg_url)
    with pytest.raises(ValueError):
        repo.history.nearest("x'; --", "v", "cosine", bytes(512), within=0.5, unknown_only=False)
