"""Match history searched by vector inside PostgreSQL: the pgvector HNSW indexes migration 0008 made on
matches.embedding (one partial expression index per engine, as on faces).

The planner uses such an index only when the query repeats its expression (`embedding::vector(128)`) and its
predicate (`engine = 'opencv'`) literally, which is why the engine name is written into the SQL text (checked
against a strict pattern; it comes from our own engine, never from a user). An HNSW scan returns the nearest
rows, not those within a distance: a search for every row within a distance asks for more rows until the
farthest one returned is beyond it. SQLite has no such index; the services compare pages of history there.
"""

from __future__ import annotations

import re

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import Float, Integer, String, TextualSelect, bindparam, func, select, text

from facegate.config import Metric
from facegate.store.base import Sighting
from facegate.store.database import Database
from facegate.store.models import EmbeddingType, MatchRecord

_ENGINE_NAME = re.compile(r"^[a-z0-9_]+$")
# pgvector measures in single precision: a row exactly at the bar may come out a hair beyond it. Callers measure
# the distances of what is returned themselves, so a row a hair too many costs nothing.
_SLACK = 1e-5
# Rows asked for at first when every row within a distance is wanted (each further ask asks for 4 times more).
FIRST_ASK = 100
# pgvector refuses a larger hnsw.ef_search; it keeps scanning past ef_search with an iterative scan anyway.
_MAX_EF_SEARCH = 1000
# Settings for one transaction (set_config(..., true) = SET LOCAL, with bound values). relaxed_order (pgvector
# 0.8) keeps scanning the graph while the model_version / unknown-only filters discard rows, so a filter that
# few rows pass cannot starve the result; max_scan_tuples bounds that scan, raised with the number of rows asked.
_SETTINGS = text(
    "SELECT set_config('hnsw.ef_search', :ef, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.max_scan_tuples', :scan, true)"
)


class SQLHistorySearch:
    def __init__(self, db: Database) -> None:
        self.db = db

    def nearest(
        self,
        engine: str,
        model_version: str,
        metric: Metric,
        probe: bytes,
        *,
        within: float,
        unknown_only: bool,
        limit: int | None = None,
    ) -> list[Sighting] | None:
        if self.db.dialect != "postgresql":
            return None
        if not _ENGINE_NAME.fullmatch(engine):
            raise ValueError(f"Engine name {engine!r} cannot be used in an index predicate.")
        query = np.frombuffer(probe, dtype="<f4")
        statement = _statement(engine, len(query), metric, unknown_only=unknown_only)
        ask = limit if limit is not None else FIRST_ASK
        while True:
            with self.db.session() as session:
                session.execute(
                    _SETTINGS, {"ef": str(min(max(ask, 40), _MAX_EF_SEARCH)), "scan": str(max(20_000, 4 * ask))}
                )
                found = session.execute(statement, {"q": query, "mv": model_version, "k": ask}).all()
            rows = sorted(found, key=lambda row: float(row.d))  # relaxed_order: nearly in order
            within_rows = [row for row in rows if row.d <= within + _SLACK]
            if limit is not None or len(rows) < ask or len(within_rows) < len(rows):
                return [Sighting(int(row.id), row.person_id, row.embedding) for row in within_rows]
            ask *= 4  # every row returned is within: there may be more

    def count(self, engine: str, model_version: str, *, unknown_only: bool) -> int:
        query = select(func.count()).where(
            MatchRecord.engine == engine,
            MatchRecord.model_version == model_version,
            MatchRecord.embedding.is_not(None),
        )
        if unknown_only:
            query = query.where(MatchRecord.person_id.is_(None))
        with self.db.session() as session:
            return int(session.execute(query).scalar_one())


def _statement(engine: str, dim: int, metric: Metric, *, unknown_only: bool) -> TextualSelect:
    vector = f"vector({dim})"
    operator = "<=>" if metric == "cosine" else "<->"  # both plain distances (<-> is not squared)
    unknown = " AND person_id IS NULL" if unknown_only else ""
    return (
        text(
            f"SELECT id, person_id, embedding, (embedding::{vector}) {operator} CAST(:q AS {vector}) AS d "
            f"FROM matches WHERE engine = '{engine}' AND model_version = :mv AND embedding IS NOT NULL{unknown} "
            "ORDER BY d LIMIT :k"
        )
        .bindparams(bindparam("q", type_=VECTOR(dim)))
        .columns(id=Integer, person_id=String, embedding=EmbeddingType, d=Float)
    )
