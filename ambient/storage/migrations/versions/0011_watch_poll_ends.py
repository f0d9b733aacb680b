"""watch poll ends: a control's request that a poll in another worker process hand back

Revision ID: 0011_watch_poll_ends
Revises: 0010_watch_polls
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_watch_poll_ends"
down_revision: str | None = "0010_watch_polls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watch_poll_ends",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("life", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watch_poll_ends")
