"""nul_escapes: a NUL stored in an event's payload or an audit row's detail, as U+FFFD

Revision ID: 0034_nul_escapes
Revises: 0033_confirm_lives
Create Date: 2026-12-07

A NUL in a JSON value was stored as "\\u0000", which PostgreSQL will not read back (->>:
"unsupported Unicode escape sequence"): one watch's error quoting a server's NUL failed every
read of the events table, the hourly retention's for every user too. New values are written
with U+FFFD (ambient.storage.db); the rows stored before are rewritten so. SQLite reads them:
nothing to do there.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034_nul_escapes"
down_revision: str | None = "0033_confirm_lives"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# "\u0000" not after an odd run of backslashes (an escaped backslash is the text's own).
NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
COLUMNS = (("events", "payload"), ("audit_log", "detail"))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        found = sa.text(
            f"SELECT id, {column}::text FROM {table} WHERE strpos({column}::text, :nul) > 0"
        )
        rewrite = sa.text(f"UPDATE {table} SET {column} = CAST(:value AS json) WHERE id = :id")
        for row_id, value in bind.execute(found, {"nul": "\\u0000"}).all():
            bind.execute(rewrite, {"value": NUL.sub(r"\1\\ufffd", value), "id": row_id})


def downgrade() -> None:
    pass  # a U+FFFD is not told from one written so
