"""one row a 接入点: the broker key's digest is unique, so two registrations at once store one

Revision ID: 0020_endpoint_broker_key
Revises: 0019_poll_grid
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_endpoint_broker_key"
down_revision: str | None = "0019_poll_grid"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows stored before have none (their URL is sealed): the service still compares those.
    with op.batch_alter_table("xiaozhi_endpoints") as batch:
        batch.add_column(sa.Column("broker_key", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_xiaozhi_endpoints_broker_key", ["broker_key"])


def downgrade() -> None:
    with op.batch_alter_table("xiaozhi_endpoints") as batch:
        batch.drop_constraint("uq_xiaozhi_endpoints_broker_key", type_="unique")
        batch.drop_column("broker_key")
