"""deliveries as leases: lease_until (a pending row is in flight until it expires), task, kind

Revision ID: 0005_delivery
Revises: 0008_agent
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_delivery"
down_revision: str | None = "0008_agent"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("task", sa.String(255)))
        batch.add_column(sa.Column("kind", sa.String(32)))
        batch.create_index("ix_deliveries_user_id", ["user", "id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_user_id")
        batch.drop_column("kind")
        batch.drop_column("task")
        batch.drop_column("lease_until")
