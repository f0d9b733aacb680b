"""watch polls: where the long-running poll of each web-monitor life stands

Revision ID: 0010_watch_polls
Revises: 0009_discussions
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_watch_polls"
down_revision: str | None = "0009_discussions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watch_polls",
        sa.Column("task", sa.String(255), primary_key=True),
        sa.Column("life", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("urls", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watch_polls")
