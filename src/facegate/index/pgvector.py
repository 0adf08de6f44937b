"""Search inside PostgreSQL: pgvector HNSW over the store's own `faces` table.

The replica keeps no index state. A face row committed by any process or replica is the index entry, so it is
found by the next search; `add` and `remove` do nothing. The partial HNSW expression indexes are created by the
store's migrations, one per engine:

    CREATE INDEX ix_faces_embedding_opencv ON faces
        USING hnsw ((embedding::vector(128)) vector_cosine_ops) WHERE engine = 'opencv';

The planner only uses such an index when the query repeats its expression and its predicate literally, which is
why the engine name is written into the SQL text (validated; it comes from our own engine, never from a user).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine

from facegate.config import Metric, PgVectorIndexSettings
from facegate.index.base import Hit, Vectors

_ENGINE_NAME = re.compile(r"^[a-z0-9_]+$")
# pgvector refuses a larger hnsw.ef_search.
_MAX_EF_SEARCH = 1000


class PgVectorIndex:
    stateful = False

    def __init__(
        self,
        settings: PgVectorIndexSettings,
        *,
        dim: int,
        metric: Metric,
        database_url: str,
        engine: str,
        model_version: str,
    ) -> None:
        if not _ENGINE_NAME.fullmatch(engine):
            raise ValueError(f"Engine name {engine!r} cannot be used in an index predicate.")
        if dim <= 0:
            raise ValueError("dim must be positive.")
        self._settings = settings
        self._dim = int(dim)
        self._database_url = database_url
        self._engine_name = engine
        self._model_version = model_version
        self._db: Engine | None = None
        operator = "<=>" if metric == "cosine" else "<->"  # both are plain distances (<-> is not squared)
        vector_type = f"vector({self._dim})"
        self._search_sql = text(
            f"SELECT id, person_id, (embedding::{vector_type}) {operator} CAST(:q AS {vector_type}) AS d "
            f"FROM faces WHERE engine = '{engine}' AND model_version = :mv ORDER BY d LIMIT :k"
        ).bindparams(bindparam("q", type_=VECTOR(self._dim)))
        self._count_sql = text(f"SELECT count(*) FROM faces WHERE engine = '{engine}' AND model_version = :mv")
        # SET LOCAL in function form so that the value can be a bound parameter; both end with the transaction.
        # relaxed_order (pgvector 0.8) keeps scanning the graph while the model_version filter discards rows,
        # so a filter that few rows pass cannot starve the result below k.
        self._settings_sql = text(
            "SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)"
        )

    def open(self) -> None:
        if self._db is None:
            self._db = create_engine(self._database_url, pool_pre_ping=True)

    def add(self, face_ids: list[int], person_ids: list[str], vectors: Vectors) -> None:
        """Nothing to do: the committed faces row is the index entry."""

    def remove(self, face_ids: list[int]) -> None:
        """Nothing to do: a deleted faces row is gone from the index."""

    def search(self, vector: Vectors, k: int) -> list[Hit]:
        if k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self._dim:
            raise ValueError(f"Query has {query.shape[0]} dimensions, the index {self._dim}.")
        if not np.isfinite(query).all():
            raise ValueError("Query vector has non-finite values.")
        ef = min(max(self._settings.ef_search, k), _MAX_EF_SEARCH)
        with self._engine().begin() as conn:
            conn.execute(self._settings_sql, {"ef": str(ef)})
            rows = conn.execute(self._search_sql, {"q": query, "mv": self._model_version, "k": k}).all()
        # Never negative (nor -0.0): float rounding of identical vectors can dip below zero.
        hits = [Hit(int(face_id), str(person_id), max(float(dist), 0.0) + 0.0) for face_id, person_id, dist in rows]
        # relaxed_order may return neighbours slightly out of order.
        hits.sort(key=lambda hit: hit.distance)
        return hits

    def __len__(self) -> int:
        """Faces this index can return: the engine's faces of the current model version."""
        with self._engine().connect() as conn:
            return int(conn.execute(self._count_sql, {"mv": self._model_version}).scalar_one())

    def save(self, path: Path) -> None:
        """Nothing to save: the index lives in PostgreSQL."""

    def load(self, path: Path) -> bool:
        return False

    def ready(self) -> bool:
        if self._db is None:
            return False
        try:
            with self._db.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None

    def _engine(self) -> Engine:
        if self._db is None:
            raise RuntimeError("PgVectorIndex.open() was not called.")
        return self._db
