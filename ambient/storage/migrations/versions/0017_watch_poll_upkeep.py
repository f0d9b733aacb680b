"""watch polls: late delivery failures kept (watch_polls.late_failures, late_failure) and
end requests found by (task, life), for a poll that looks for one as it starts

Revision ID: 0017_watch_poll_upkeep
Revises: 0016_user_language
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_watch_poll_upkeep"
down_revision: str | None = "0016_user_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_polls") as batch:
        batch.add_column(sa.Column("late_failures", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("late_failure", sa.JSON, nullable=True))
    op.create_index("ix_watch_poll_ends_task_life", "watch_poll_ends", ["task", "life"])


def downgrade() -> None:
    op.drop_index("ix_watch_poll_ends_task_life", "watch_poll_ends")
    with op.batch_alter_table("watch_polls") as batch:
        batch.drop_column("late_failure")
        batch.drop_column("late_failures")
