"""a removed 小智 endpoint's or device's id never names a later one (AUTOINCREMENT on SQLite)

Revision ID: 0022_ids_never_reused
Revises: 0021_voiceprint_unique
Create Date: 2026-11-27
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_ids_never_reused"
down_revision: str | None = "0021_voiceprint_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# People remove these by id (models.Removable); PostgreSQL's sequences never reuse one already.
TABLES = ("xiaozhi_endpoints", "xiaozhi_devices")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # SQLite cannot add AUTOINCREMENT to a table: it is made anew with the rows copied, and its
    # counter starts at their highest id.
    _recreate(sqlite_autoincrement=True)
    # An endpoint removed before this, with an id above every row left, is in the audit log:
    # the counter starts past it too.
    op.execute(
        sa.text(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'xiaozhi_endpoints', 0 "
            "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'xiaozhi_endpoints')"
        )
    )
    op.execute(
        sa.text(
            "UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT max(CAST(json_extract("
            "detail, '$.id') AS INTEGER)) FROM audit_log WHERE action LIKE "
            "'xiaozhi.endpoint.%'), 0)) WHERE name = 'xiaozhi_endpoints'"
        )
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _recreate(sqlite_autoincrement=False)


def _recreate(*, sqlite_autoincrement: bool) -> None:
    with warnings.catch_warnings():
        # Reflecting users (a device's foreign key) skips its lower(voiceprint_id) index, which
        # the copy does not need: said on every migrate, it would only alarm the operator.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        for table in TABLES:
            with op.batch_alter_table(
                table,
                recreate="always",
                table_kwargs={"sqlite_autoincrement": sqlite_autoincrement},
            ):
                pass
