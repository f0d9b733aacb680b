"""watch_polls.late_failures: deliveries that failed after their poll handed back, kept

Revision ID: 0017_watch_poll_late_failures
Revises: 0016_user_language
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_watch_poll_late_failures"
down_revision: str | None = "0016_user_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_polls") as batch:
        batch.add_column(sa.Column("late_failures", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("late_failure", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_polls") as batch:
        batch.drop_column("late_failure")
        batch.drop_column("late_failures")
