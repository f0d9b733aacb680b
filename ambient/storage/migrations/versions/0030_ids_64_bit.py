"""ids_64_bit: every table's id and its sequence hold 64 bits on PostgreSQL (BIGINT)

Revision ID: 0030_ids_64_bit
Revises: 0029_device_withdrawn
Create Date: 2026-12-04

INTEGER ids ran out at 2**31 - 1: a deployment writing millions of events, deliveries and
page snapshots a day reached it in a few years, and then every insert into those tables failed
("nextval: reached maximum value of sequence"). No column refers to these ids (no foreign key
holds one), so only the ids and their sequences change. PostgreSQL rewrites each table to
change its column's type (its indexes are built again), holding it locked until done. SQLite's
ids are its rowids (INTEGER PRIMARY KEY), 64 bits already: nothing to do. A downgrade fails on
an id past 2**31 - 1.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_ids_64_bit"
down_revision: str | None = "0029_device_withdrawn"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables keyed by a numbered id (models.Numbered), as of 0029.
TABLES = (
    "users",
    "events",
    "deliveries",
    "inbox",
    "share_links",
    "audit_log",
    "briefings",
    "broadcasts",
    "alert_rules",
    "remediations",
    "remediation_actions",
    "agent_servers",
    "xiaozhi_devices",
    "xiaozhi_withdrawals",
    "xiaozhi_endpoints",
    "watch_snapshots",
    "watch_poll_ends",
)


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")


def _retype(kind: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(sa.text(f'ALTER TABLE "{table}" ALTER COLUMN id TYPE {kind}'))
        sequence = bind.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table}
        ).scalar_one()
        # Its bounds follow the type (they were the old type's own): up to 2**63 - 1.
        op.execute(sa.text(f"ALTER SEQUENCE {sequence} AS {kind}"))
