"""poll hand-over: a lease keeps its attempt's task token (a sweep fails a dead process's
attempt by it), and an end request may name the one process whose attempt is to end

Revision ID: 0018_poll_handover
Revises: 0017_watch_poll_upkeep
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_poll_handover"
down_revision: str | None = "0017_watch_poll_upkeep"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_poll_leases") as batch:
        batch.add_column(sa.Column("task_token", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("silent_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("watch_poll_ends") as batch:
        batch.add_column(sa.Column("process", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_poll_ends") as batch:
        batch.drop_column("process")
    with op.batch_alter_table("watch_poll_leases") as batch:
        batch.drop_column("silent_since")
        batch.drop_column("task_token")
