"""voice_tokens: a user's token that opens only the voice profile (/mcp/voice)

Revision ID: 0032_voice_tokens
Revises: 0031_remediation_state_index
Create Date: 2026-12-06

A self-hosted 小智 server reaches /mcp/voice with a token written in its settings file; the
user's API token there opened every tool and route (cloud writes, users, settings) to whoever
read that file. A voice token (hashed, like the API token; none until asked for) opens the
voice profile alone. A downgrade drops them: the settings files holding one stop working.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_voice_tokens"
down_revision: str | None = "0031_remediation_state_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("voice_token_hash", sa.String(64), nullable=True))
    op.create_index("ix_users_voice_token_hash", "users", ["voice_token_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_users_voice_token_hash", table_name="users")
    # Not a batch copy of the table (SQLite's): that would lose its voiceprint expression
    # index. SQLite drops a column itself since 3.35.
    op.execute("ALTER TABLE users DROP COLUMN voice_token_hash")
