"""match history searchable by vector on PostgreSQL: pgvector HNSW indexes on matches.embedding

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One partial HNSW expression index per engine, as 0002 made on faces (both engines make 128-d descriptors; the
# column is an untyped `vector`, so the index is on a cast). The store's history search repeats the expression
# and the predicate literally, or the planner would not use it. Operators: the engine's metric (SFace cosine,
# dlib euclidean), as services.accuracy.distance_matrix measures. On a server that already holds a long history
# the build takes a while (about a minute per 100,000 rows here) and holds writes to matches meanwhile.
PGVECTOR_INDEXES = {"opencv": "vector_cosine_ops", "dlib": "vector_l2_ops"}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: history is searched by comparing pages of embeddings in numpy
    # The graph is built much faster when it fits in memory (pgvector warns when it does not).
    op.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for engine, ops in PGVECTOR_INDEXES.items():
        op.execute(
            f"CREATE INDEX ix_matches_embedding_{engine} ON matches "
            f"USING hnsw ((embedding::vector(128)) {ops}) WITH (m = 16, ef_construction = 200) "
            f"WHERE engine = '{engine}'"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for engine in PGVECTOR_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS ix_matches_embedding_{engine}")
