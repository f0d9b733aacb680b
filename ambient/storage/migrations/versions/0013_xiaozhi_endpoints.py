"""xiaozhi endpoints: the xiaozhi.me MCP 接入点 the bridge dials, with their lease and state

Revision ID: 0013_xiaozhi_endpoints
Revises: 0014_xiaozhi_devices
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_xiaozhi_endpoints"
down_revision: str | None = "0014_xiaozhi_devices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "xiaozhi_endpoints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user", sa.String(63), nullable=False),
        sa.Column("url_sealed", sa.Text, nullable=False),
        sa.Column("url_masked", sa.String(2048), nullable=False),
        sa.Column("verbatim", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("state", sa.String(16), nullable=False, server_default="retrying"),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_xiaozhi_endpoints_user", "xiaozhi_endpoints", ["user"])


def downgrade() -> None:
    op.drop_table("xiaozhi_endpoints")
