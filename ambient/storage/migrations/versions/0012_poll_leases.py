"""poll leases: which worker process runs each watch's poll, and which processes are alive

Revision ID: 0012_poll_leases
Revises: 0011_watch_poll_ends
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_poll_leases"
down_revision: str | None = "0011_watch_poll_ends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_processes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dead_after", sa.Float, nullable=False),
    )
    op.create_index("ix_worker_processes_beat_at", "worker_processes", ["beat_at"])
    op.create_table(
        "watch_poll_leases",
        sa.Column("task", sa.String(255), primary_key=True),
        sa.Column("life", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("poll", sa.Integer, nullable=False),
        sa.Column("process", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_watch_poll_leases_process", "watch_poll_leases", ["process"])
    with op.batch_alter_table("watch_poll_ends") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("poll", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_poll_ends") as batch:
        batch.drop_column("poll")
        batch.drop_column("run_id")
    op.drop_table("watch_poll_leases")
    op.drop_table("worker_processes")
