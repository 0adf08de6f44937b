"""suggested people: groups of recurring unknown faces and their members

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suggestions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("engine", sa.String(50), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # Dismissed groups stay, with their faces: new faces of the same stranger join them, never a new one.
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True),
        # When `unknown_person_recurring` was published for this group (once).
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_suggestions_engine", "suggestions", ["engine", "model_version"])
    op.create_table(
        "suggestion_faces",
        sa.Column("match_id", sa.Integer(), sa.ForeignKey("matches.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "suggestion_id",
            sa.String(36),
            sa.ForeignKey("suggestions.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
    )
    # The groups' write counter exists from the start, so concurrent first writers only ever update it.
    op.execute("INSERT INTO store_meta (key, value) VALUES ('suggestions_generation', '0')")


def downgrade() -> None:
    op.execute("DELETE FROM store_meta WHERE key = 'suggestions_generation'")
    op.drop_table("suggestion_faces")
    op.drop_index("ix_suggestions_engine", table_name="suggestions")
    op.drop_table("suggestions")
