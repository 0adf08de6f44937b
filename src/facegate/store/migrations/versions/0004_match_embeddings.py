"""match history keeps each face's embedding (past sightings searchable once a person is named)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before this revision have none (they are not searchable as sightings).
    with op.batch_alter_table("matches") as batch_op:
        batch_op.add_column(
            sa.Column("embedding", sa.LargeBinary().with_variant(VECTOR(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("matches") as batch_op:
        batch_op.drop_column("embedding")
