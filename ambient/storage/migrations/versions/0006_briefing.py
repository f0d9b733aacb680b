"""daily briefing: briefings, per-user log baselines, the broadcast queue

Revision ID: 0006_briefing
Revises: 0004_roles
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_briefing"
down_revision: str | None = "0004_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "briefings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user", sa.String(63), nullable=False, index=True),
        sa.Column("date", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("generated_by", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("report_markdown", sa.Text, nullable=False),
        sa.Column("prepared_at", sa.DateTime(timezone=True)),
        sa.Column("given_at", sa.DateTime(timezone=True)),
        sa.Column("given_via", sa.String(32)),
        sa.Column("pushed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user", "date", name="uq_briefing_user_date"),
    )
    op.create_table(
        "log_baselines",
        sa.Column("user", sa.String(63), primary_key=True),
        sa.Column("last_date", sa.String(10)),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("user", sa.String(63), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("broadcast_on", sa.String(10)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_broadcasts_user_pending", "broadcasts", ["user", "broadcast_on"])


def downgrade() -> None:
    op.drop_index("ix_broadcasts_user_pending", table_name="broadcasts")
    op.drop_table("broadcasts")
    op.drop_table("log_baselines")
    op.drop_table("briefings")
