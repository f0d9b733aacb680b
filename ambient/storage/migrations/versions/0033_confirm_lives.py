"""confirm_lives: the server life each of a chat confirm's calls was asked for

Revision ID: 0033_confirm_lives
Revises: 0032_voice_tokens
Create Date: 2026-12-06

A chat confirm listed its calls by function name only: a server removed and another added
under its name before the yes ran the approved call on the new one. Each call's server and
that server's life (its row's id and time) are kept with the confirm; a yes runs nothing on a
server since removed or replaced.
A confirm open at the upgrade has none kept: its yes runs nothing (ask again).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033_confirm_lives"
down_revision: str | None = "0032_voice_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("chat_conversations", sa.Column("confirm_lives", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE chat_conversations DROP COLUMN confirm_lives")
