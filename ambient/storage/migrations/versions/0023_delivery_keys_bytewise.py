"""deliveries.key compared bytewise on PostgreSQL too: a notification's rows are a key range

Revision ID: 0023_delivery_keys_bytewise
Revises: 0022_ids_never_reused
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023_delivery_keys_bytewise"
down_revision: str | None = "0022_ids_never_reused"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite compares bytes already. Under a linguistic collation neither the range nor a
    # LIKE prefix can use the key's unique index (rebuilt here, in "C").
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE deliveries ALTER COLUMN key TYPE varchar(255) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE deliveries ALTER COLUMN key TYPE varchar(255) COLLATE "default"')
