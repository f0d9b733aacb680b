"""users, events, deliveries, inbox

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("email", sa.String(320)),
        sa.Column("phone", sa.String(32)),
        sa.Column("api_token_hash", sa.String(64), unique=True),
        sa.Column("push_config", sa.JSON, nullable=False),
        sa.Column("rollback_permission", sa.String(16), nullable=False),
        sa.Column("wake_words", sa.JSON, nullable=False),
        sa.Column("assistant_name", sa.String(40), nullable=False),
        sa.Column("voiceprint_id", sa.String(128)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("briefing_prepare_at", sa.String(5), nullable=False),
        sa.Column("briefing_window_start", sa.String(5), nullable=False),
        sa.Column("briefing_window_end", sa.String(5), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False, index=True),
        sa.Column("user", sa.String(63)),
        sa.Column("task", sa.String(255), index=True),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(255), unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_events_user_time", "events", ["user", "created_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("user", sa.String(63), index=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("provider_id", sa.String(255)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "user", sa.String(63), sa.ForeignKey("users.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("link", sa.String(1024)),
        sa.Column("read", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_table("deliveries")
    op.drop_index("ix_events_user_time", table_name="events")
    op.drop_table("events")
    op.drop_table("users")
