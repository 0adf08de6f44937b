"""people tools: "not this person" rejections, relabelled and rejected match history, auto-enrolled faces

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        # The person the face is NOT; the rejection goes with the person.
        sa.Column("person_id", sa.String(36), sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
        # The history row it came from; the rejection outlives a retention purge of that row (it keeps the embedding).
        sa.Column("match_id", sa.Integer(), sa.ForeignKey("matches.id", ondelete="SET NULL"), nullable=True),
        sa.Column("engine", sa.String(50), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("embedding", sa.LargeBinary().with_variant(VECTOR(), "postgresql"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rejections_person_id", "rejections", ["person_id"])
    op.create_index("ix_rejections_match_id", "rejections", ["match_id"])
    op.create_index("ix_rejections_engine", "rejections", ["engine", "model_version"])
    # Plain ADD/DROP COLUMN throughout, never batch mode: on SQLite batch mode copies a table for a NOT NULL column
    # or a drop, and the copy loses AUTOINCREMENT (face and match ids must never be reused). SQLite >= 3.35 drops
    # columns in place.
    # Set when a user said "not this person" (the person link is cleared then; the rejection row keeps who).
    op.add_column("matches", sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True))
    # Set when an unknown sighting was named afterwards by relabelling (retro-search, stricter bar).
    op.add_column("matches", sa.Column("relabelled_at", sa.DateTime(timezone=True), nullable=True))
    # Faces added by identify (safe auto-enrollment), not by a user.
    op.add_column("faces", sa.Column("auto", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("faces", "auto")
    op.drop_column("matches", "relabelled_at")
    op.drop_column("matches", "rejected_at")
    op.drop_index("ix_rejections_engine", table_name="rejections")
    op.drop_index("ix_rejections_match_id", table_name="rejections")
    op.drop_index("ix_rejections_person_id", table_name="rejections")
    op.drop_table("rejections")
