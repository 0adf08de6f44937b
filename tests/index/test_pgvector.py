"""index.pgvector on a real PostgreSQL with pgvector: search runs on the store's faces table, nothing is cached."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine, make_url

from facegate.config import HNSWIndexSettings, Metric, PgVectorIndexSettings
from facegate.index.factory import build_index
from facegate.index.hnsw import HNSWIndex
from facegate.index.pgvector import PgVectorIndex
from facegate.store.database import Database

DIM = 128
MODEL = "sface-2021dec-int8bq"


@pytest.fixture
def db(pg_url: str) -> Iterator[Engine]:
    """A fresh database with the store's schema, from its own migrations (faces and the partial HNSW indexes)."""
    database = Database(pg_url)
    database.open()
    database.migrate()
    yield database.engine
    database.close()


def _index(pg_url: str, engine: str = "opencv", metric: Metric = "cosine", **settings: int) -> PgVectorIndex:
    index = PgVectorIndex(
        PgVectorIndexSettings(**settings),
        dim=DIM,
        metric=metric,
        database_url=pg_url,
        engine=engine,
        model_version=MODEL,
    )
    index.open()
    return index


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _insert(
    pg_url: str, ids: list[int], vectors: np.ndarray, *, engine: str = "opencv", model_version: str = MODEL
) -> None:
    """Commit face rows (each with its own person and photo) through a connection of its own, as the store of
    this or another replica would: the index is never told."""
    now = datetime.now(UTC)
    people = [(f"p{i}", f"p{i}", now, now) for i in ids]
    images = [(f"img{i}", f"p{i}", f"img{i}", f"img{i}", now) for i in ids]
    faces = [
        (i, f"p{i}", f"img{i}", engine, model_version, "[" + ",".join(map(str, v.tolist())) + "]", now)
        for i, v in zip(ids, vectors, strict=True)
    ]
    with psycopg.connect(_libpq(pg_url)) as conn, conn.cursor() as cur:  # one transaction, committed on exit
        cur.executemany(
            "INSERT INTO people (id, name, metadata, created_at, updated_at) VALUES (%s, %s, '{}', %s, %s)", people
        )
        cur.executemany(
            "INSERT INTO images (id, person_id, blob_key, sha256, width, height, created_at)"
            " VALUES (%s, %s, %s, %s, 100, 100, %s)",
            images,
        )
        cur.executemany(
            'INSERT INTO faces (id, person_id, image_id, "left", top, width, height, quality, detector_score,'
            " sharpness, engine, model_version, embedding, created_at)"
            " VALUES (%s, %s, %s, 0, 0, 50, 50, 1, 1, 100, %s, %s, %s, %s)",
            faces,
        )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize(("engine", "metric"), [("opencv", "cosine"), ("dlib", "euclidean")])
def test_nearest_first_with_true_distances(db: Engine, pg_url: str, engine: str, metric: Metric) -> None:
    vectors = _vectors(50)
    _insert(pg_url, list(range(100, 150)), vectors, engine=engine)
    index = _index(pg_url, engine, metric)
    query = vectors[7] + np.float32(0.05) * _vectors(1, seed=9)[0]

    hits = index.search(query, 10)

    if metric == "cosine":
        exact = np.array([_cosine(query, v) for v in vectors])
    else:
        exact = np.linalg.norm(vectors - query, axis=1)  # pgvector's <-> is not squared
    order = np.argsort(exact)[:10]
    assert [h.face_id for h in hits] == [100 + int(i) for i in order]
    assert hits[0].person_id == "p107"
    for hit, i in zip(hits, order, strict=True):
        assert hit.distance == pytest.approx(float(exact[i]), abs=1e-5)
    assert index.stateful is False
    index.close()


def test_only_this_engine_and_model_version(db: Engine, pg_url: str) -> None:
    vectors = _vectors(30)
    _insert(pg_url, list(range(10)), vectors[:10])
    _insert(pg_url, list(range(10, 20)), vectors[10:20], model_version="older-model")
    _insert(pg_url, list(range(20, 30)), vectors[20:30], engine="dlib")
    index = _index(pg_url)

    for query in vectors:
        assert {h.face_id for h in index.search(query, 30)} == set(range(10))
    assert len(index) == 10
    index.close()


def test_k_larger_than_the_rows(db: Engine, pg_url: str) -> None:
    vectors = _vectors(3)
    _insert(pg_url, [1, 2, 3], vectors)
    index = _index(pg_url)

    assert sorted(h.face_id for h in index.search(vectors[0], 500)) == [1, 2, 3]
    assert index.search(vectors[0], 0) == []
    index.close()


def test_empty_table(db: Engine, pg_url: str) -> None:
    index = _index(pg_url)
    assert len(index) == 0
    assert index.search(_vectors(1)[0], 5) == []
    index.close()


def test_face_committed_elsewhere_is_found_at_once_and_deleted_one_never(db: Engine, pg_url: str) -> None:
    vectors = _vectors(20)
    _insert(pg_url, list(range(10)), vectors[:10])
    index = _index(pg_url)
    assert index.search(vectors[15], 1)[0].face_id != 15

    # Another replica commits a face through its own connection; add() is never called here.
    _insert(pg_url, [15], vectors[15:16])
    hit = index.search(vectors[15], 1)[0]
    assert (hit.face_id, hit.person_id) == (15, "p15")
    assert hit.distance == pytest.approx(0.0, abs=1e-6)

    with psycopg.connect(_libpq(pg_url), autocommit=True) as other:
        other.execute("DELETE FROM faces WHERE id IN (15, 3)")
    for query in (vectors[15], vectors[3]):
        assert not {h.face_id for h in index.search(query, 20)} & {3, 15}
    assert len(index) == 9
    index.close()


def test_add_and_remove_change_nothing(db: Engine, pg_url: str) -> None:
    vectors = _vectors(5)
    _insert(pg_url, [1, 2], vectors[:2])
    index = _index(pg_url)
    index.add([3], ["p3"], vectors[2:3])
    index.remove([1])
    assert sorted(h.face_id for h in index.search(vectors[0], 5)) == [1, 2]
    index.close()


@pytest.mark.parametrize(
    ("engine", "metric", "name"),
    [
        ("opencv", "cosine", "ix_faces_embedding_opencv"),
        ("dlib", "euclidean", "ix_faces_embedding_dlib"),
    ],
)
def test_query_uses_the_engines_hnsw_index(db: Engine, pg_url: str, engine: str, metric: Metric, name: str) -> None:
    n = 2000
    _insert(pg_url, list(range(n)), _vectors(n), engine=engine)
    with db.begin() as conn:
        conn.execute(text("ANALYZE faces"))
    index = _index(pg_url, engine, metric)
    query = _vectors(1, seed=5)[0]
    sql = index._search_sql  # the exact statement search() sends
    params = {"q": query, "mv": MODEL, "k": 10}

    # Explained with the settings search() uses. On a table this small the planner rightly prefers to sort every
    # row exactly at ef_search 100 (measured: it takes the HNSW index by itself from ~5,000 rows, and at 1M, see
    # bench/search_1m.py). Ruling out the sort shows that the query's expression and predicate match the partial
    # index, so the index is usable at all...
    with db.begin() as conn:
        conn.execute(index._settings_sql, {"ef": "100"})
        conn.execute(text("SET LOCAL enable_sort = off"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        explain = text("EXPLAIN " + sql.text).bindparams(bindparam("q", type_=VECTOR(DIM)))
        plan = "\n".join(row[0] for row in conn.execute(explain, params))
    assert name in plan, plan
    assert "Index Scan" in plan, plan

    # ...and it agrees with exact search.
    with db.begin() as conn:
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        exact = conn.execute(sql, params).all()
    assert [h.face_id for h in index.search(query, 10)][:5] == [r[0] for r in exact][:5]
    index.close()


def test_factory_picks_pgvector_and_rejects_sqlite(pg_url: str, tmp_path: object) -> None:
    kwargs = {"dim": DIM, "metric": "cosine", "engine": "opencv", "model_version": MODEL}
    index = build_index(PgVectorIndexSettings(), database_url=pg_url, **kwargs)  # type: ignore[arg-type]
    assert isinstance(index, PgVectorIndex)
    assert isinstance(build_index(HNSWIndexSettings(), database_url="sqlite:///x.db", **kwargs), HNSWIndex)  # type: ignore[arg-type]
    for url in ("sqlite:///x.db", "", "not a url"):
        with pytest.raises(ValueError, match="FACEGATE_INDEX__TYPE=pgvector needs FACEGATE_DATABASE__URL"):
            build_index(PgVectorIndexSettings(), database_url=url, **kwargs)  # type: ignore[arg-type]


def test_engine_name_must_be_an_identifier(pg_url: str) -> None:
    with pytest.raises(ValueError, match="Engine name"):
        PgVectorIndex(
            PgVectorIndexSettings(),
            dim=DIM,
            metric="cosine",
            database_url=pg_url,
            engine="x' OR '1'='1",
            model_version=MODEL,
        )


def test_ready_only_while_open_and_reachable(db: Engine, pg_url: str) -> None:
    index = PgVectorIndex(
        PgVectorIndexSettings(), dim=DIM, metric="cosine", database_url=pg_url, engine="opencv", model_version=MODEL
    )
    assert not index.ready()  # the constructor connects to nothing
    index.open()
    assert index.ready()
    index.close()
    assert not index.ready()

    bad_url = make_url(pg_url).set(database="no_such_database").render_as_string(hide_password=False)
    bad = _index(bad_url)
    assert not bad.ready()
    bad.close()


def _libpq(pg_url: str) -> str:
    url = make_url(pg_url)
    return f"host={url.query['host']} dbname={url.database} user={url.username}"
