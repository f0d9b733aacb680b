"""robot_windows: a group robot's sends of the last minute, shared by every worker

Revision ID: 0026_robot_windows
Revises: 0025_chat_conversations
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_robot_windows"
down_revision: str | None = "0025_chat_conversations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "robot_windows",
        sa.Column("robot", sa.String(64), primary_key=True),
        sa.Column("slots", sa.JSON, nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )
    op.create_index("ix_robot_windows_until", "robot_windows", ["until"])


def downgrade() -> None:
    op.drop_table("robot_windows")
