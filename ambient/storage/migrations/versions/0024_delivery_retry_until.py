"""deliveries.retry_until: a deferred delivery (a deliver-later run has it) is tried until then

Revision ID: 0024_delivery_retry_until
Revises: 0023_delivery_keys_bytewise
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_delivery_retry_until"
down_revision: str | None = "0023_delivery_keys_bytewise"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("retry_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("retry_until")
