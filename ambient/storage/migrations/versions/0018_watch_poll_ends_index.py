"""watch_poll_ends (task, life): a poll that starts looks up a request to end it

Revision ID: 0018_watch_poll_ends_index
Revises: 0017_watch_poll_late_failures
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_watch_poll_ends_index"
down_revision: str | None = "0017_watch_poll_late_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_watch_poll_ends_task_life", "watch_poll_ends", ["task", "life"])


def downgrade() -> None:
    op.drop_index("ix_watch_poll_ends_task_life", "watch_poll_ends")
