"""chat_conversations: chat conversations in the app database, held by one turn at a time

Revision ID: 0025_chat_conversations
Revises: 0024_delivery_retry_until
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_chat_conversations"
down_revision: str | None = "0024_delivery_retry_until"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(63), nullable=False),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("pending", sa.JSON, nullable=False),
        sa.Column("confirm_id", sa.String(32), nullable=True),
        sa.Column("holder", sa.String(32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_chat_conversations_user_updated", "chat_conversations", ["user", "updated_at"]
    )
    op.create_index("ix_chat_conversations_updated_at", "chat_conversations", ["updated_at"])


def downgrade() -> None:
    op.drop_table("chat_conversations")
