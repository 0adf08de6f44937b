"""Pick the vector index named by configuration."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from facegate.config import IndexSettings, Metric, PgVectorIndexSettings
from facegate.index.base import VectorIndex
from facegate.index.hnsw import HNSWIndex
from facegate.index.pgvector import PgVectorIndex


def build_index(
    settings: IndexSettings, *, dim: int, metric: Metric, database_url: str, engine: str, model_version: str
) -> VectorIndex:
    if isinstance(settings, PgVectorIndexSettings):
        if not _is_postgresql(database_url):
            raise ValueError(
                "FACEGATE_INDEX__TYPE=pgvector needs FACEGATE_DATABASE__URL to point at PostgreSQL "
                "(postgresql+psycopg://...)"
            )
        return PgVectorIndex(
            settings, dim=dim, metric=metric, database_url=database_url, engine=engine, model_version=model_version
        )
    return HNSWIndex(settings, dim=dim, metric=metric)


def _is_postgresql(database_url: str) -> bool:
    try:
        return make_url(database_url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False
