"""device_withdrawn: who a 小智 device's owner (or an admin) stopped it answering

Revision ID: 0029_device_withdrawn
Revises: 0028_voiceprint_case
Create Date: 2026-12-02

A consent the owner withdrew stays withdrawn until the owner (or an admin) lets its user back:
the member's own allow put them back at once. Devices from before withdrew no one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_device_withdrawn"
down_revision: str | None = "0028_voiceprint_case"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("xiaozhi_devices") as batch:
        batch.add_column(sa.Column("withdrawn", sa.JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("xiaozhi_devices") as batch:
        batch.drop_column("withdrawn")
