"""graded remediation: alert rules, remediation runs, per-cluster actions, circuit breakers

Revision ID: 0007_remediation
Revises: 0006_briefing
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_remediation"
down_revision: str | None = "0006_briefing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("cluster_id", sa.String(128), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workload", sa.String(253), nullable=False),
        sa.Column("importance", sa.Integer),
        sa.Column("manual", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "remediations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_key", sa.String(255), nullable=False, unique=True),
        sa.Column("remediation_id", sa.String(255), nullable=False, index=True),
        sa.Column("user", sa.String(63), nullable=False),
        sa.Column("cluster_id", sa.String(128), nullable=False),
        sa.Column("service", sa.String(512), nullable=False),
        sa.Column("alert_type", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("score", sa.Integer),
        sa.Column("budget", sa.Integer),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("resolved_rung", sa.Integer),
        sa.Column("budget_exhausted", sa.Boolean, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_remediations_user_started", "remediations", ["user", "started_at"])
    op.create_table(
        "remediation_actions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("cluster_id", sa.String(128), nullable=False),
        sa.Column("service", sa.String(512), nullable=False),
        sa.Column("rung", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_remediation_actions_cluster_at", "remediation_actions", ["cluster_id", "at"]
    )
    op.create_table(
        "remediation_breakers",
        sa.Column("service", sa.String(512), primary_key=True),
        sa.Column("rung", sa.Integer, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True)),
        sa.Column("last_key", sa.String(255)),
    )


def downgrade() -> None:
    op.drop_table("remediation_breakers")
    op.drop_index("ix_remediation_actions_cluster_at", table_name="remediation_actions")
    op.drop_table("remediation_actions")
    op.drop_index("ix_remediations_user_started", table_name="remediations")
    op.drop_table("remediations")
    op.drop_table("alert_rules")
