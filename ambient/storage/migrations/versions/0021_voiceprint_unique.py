"""one voiceprint id per user, whatever its case: two updates at once cannot both take it

Revision ID: 0021_voiceprint_unique
Revises: 0020_endpoint_broker_key
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_voiceprint_unique"
down_revision: str | None = "0020_endpoint_broker_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # As ambient.xiaozhi.resolve_speaker compares them: case-insensitively (NULLs repeat freely).
    op.create_index("uq_users_voiceprint", "users", [sa.text("lower(voiceprint_id)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_voiceprint", table_name="users")
