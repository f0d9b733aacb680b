"""xiaozhi devices: a 小智 device (MAC) per user, its hashed token, who allowed it

Revision ID: 0014_xiaozhi_devices
Revises: 0012_poll_leases
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_xiaozhi_devices"
# Its own branch from the shared base, like every area (the endpoint bridge has another).
down_revision: str | None = "0012_poll_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "xiaozhi_devices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "user",
            sa.String(63),
            sa.ForeignKey("users.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("speakers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_xiaozhi_devices_user", "xiaozhi_devices", ["user"])


def downgrade() -> None:
    op.drop_index("ix_xiaozhi_devices_user", "xiaozhi_devices")
    op.drop_table("xiaozhi_devices")
