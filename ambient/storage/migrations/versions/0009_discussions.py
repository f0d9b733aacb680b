"""discussions: participants (seeded with the product's agents), discussions, messages

Revision ID: 0009_discussions
Revises: 0005_delivery
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009_discussions"
down_revision: str | None = "0005_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Copied, not imported: a migration must not change when the code does.
SEED = [
    ("xiaozhi", "小智 (assistant)"),
    ("remediation", "Graded remediation"),
    ("briefing", "Morning briefing"),
    ("triage", "Nightly alert triage"),
]


def upgrade() -> None:
    participants = op.create_table(
        "discussion_participants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(63)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "discussions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("topic", sa.String(300), nullable=False),
        sa.Column("topic_key", sa.String(300), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("initiator", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_discussions_topic_key_status", "discussions", ["topic_key", "status"])
    op.create_index("ix_discussions_subject", "discussions", ["subject"])
    op.create_table(
        "discussion_messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "discussion_id",
            sa.String(64),
            sa.ForeignKey("discussions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("from_id", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("reply_to", sa.String(64)),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("source_type", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_discussion_messages_disc_time", "discussion_messages", ["discussion_id", "created_at"]
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        participants,
        [
            {"id": pid, "display_name": name, "role": "agent", "owner": None, "created_at": now}
            for pid, name in SEED
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_discussion_messages_disc_time", table_name="discussion_messages")
    op.drop_table("discussion_messages")
    op.drop_index("ix_discussions_subject", table_name="discussions")
    op.drop_index("ix_discussions_topic_key_status", table_name="discussions")
    op.drop_table("discussions")
    op.drop_table("discussion_participants")
