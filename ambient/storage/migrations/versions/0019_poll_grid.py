"""poll grid on the lease: a sweep starts a dead process's polls in the order their next
checks fall due

Revision ID: 0019_poll_grid
Revises: 0018_poll_handover
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_poll_grid"
down_revision: str | None = "0018_poll_handover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("watch_poll_leases") as batch:
        batch.add_column(sa.Column("first_check_in", sa.Float, nullable=True))
        batch.add_column(sa.Column("interval_seconds", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watch_poll_leases") as batch:
        batch.drop_column("interval_seconds")
        batch.drop_column("first_check_in")
