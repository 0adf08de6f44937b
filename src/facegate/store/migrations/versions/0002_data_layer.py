"""production data layer: change log, pending blobs, unique photo per person, pgvector HNSW indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 17:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Partial HNSW indexes per engine (both engines make 128-d descriptors). ef_construction 200, not pgvector's
# 64: at 1M faces 64 never reached recall@1 0.99 (0.965 at ef_search 400); 200 gave 0.998 at ef_search 100
# with p99 5.5 ms (bench/README.md, bench/results/search-1m.json).
PGVECTOR_INDEXES = {"opencv": "vector_cosine_ops", "dlib": "vector_l2_ops"}


def upgrade() -> None:
    op.create_table(
        "face_changes",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("op", sa.String(length=10), nullable=False),
        sa.Column("face_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("engine", sa.String(length=50), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_face_changes_created_at", "face_changes", ["created_at"])
    op.create_table(
        "pending_blobs",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_pending_blobs_created_at", "pending_blobs", ["created_at"])
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("images") as batch_op:
        batch_op.create_unique_constraint("uq_images_person_sha256", ["person_id", "sha256"])
    with op.batch_alter_table("matches") as batch_op:
        batch_op.create_index("ix_matches_crop_key", ["crop_key"])
    if op.get_bind().dialect.name == "postgresql":
        for engine, ops in PGVECTOR_INDEXES.items():
            op.execute(
                f"CREATE INDEX ix_faces_embedding_{engine} ON faces "
                f"USING hnsw ((embedding::vector(128)) {ops}) WITH (m = 16, ef_construction = 200) "
                f"WHERE engine = '{engine}'"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for engine in PGVECTOR_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS ix_faces_embedding_{engine}")
    with op.batch_alter_table("matches") as batch_op:
        batch_op.drop_index("ix_matches_crop_key")
    with op.batch_alter_table("images") as batch_op:
        batch_op.drop_constraint("uq_images_person_sha256", type_="unique")
    op.drop_table("store_meta")
    op.drop_index("ix_pending_blobs_created_at", "pending_blobs")
    op.drop_table("pending_blobs")
    op.drop_index("ix_face_changes_created_at", "face_changes")
    op.drop_table("face_changes")
