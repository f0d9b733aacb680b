"""watch snapshots: the last normalised text per (task, url), keyed by hash

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watch_snapshots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task", "url", "hash", name="uq_watch_snapshot"),
    )
    op.create_index("ix_watch_snapshots_task_url", "watch_snapshots", ["task", "url"])


def downgrade() -> None:
    op.drop_index("ix_watch_snapshots_task_url", table_name="watch_snapshots")
    op.drop_table("watch_snapshots")
