"""agent servers: the MCP servers each user adds to their agent

Revision ID: 0008_agent
Revises: 0007_remediation
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_agent"
down_revision: str | None = "0007_remediation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_servers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user",
            sa.String(63),
            sa.ForeignKey("users.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user", "name", name="uq_agent_server"),
    )


def downgrade() -> None:
    op.drop_table("agent_servers")
