"""users.language: the language of a user's pages (zh or en; NULL is the server's default)

Revision ID: 0016_user_language
Revises: 0013_xiaozhi_endpoints
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_user_language"
# Its own branch from the shared base, like every area.
down_revision: str | None = "0013_xiaozhi_endpoints"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and without a default: existing users keep following AMBIENT_DEFAULT_LANGUAGE
    # until they choose.
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
