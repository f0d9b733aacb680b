"""one voiceprint id per user, whatever its case: two updates at once cannot both take it

Revision ID: 0021_voiceprint_unique
Revises: 0020_endpoint_broker_key
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ambient.storage.migrate import MigrationRefusedError

revision: str = "0021_voiceprint_unique"
down_revision: str | None = "0020_endpoint_broker_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Users who already share one are named, so the operator knows whom to change.
    shared: dict[str, list[str]] = {}
    rows = op.get_bind().execute(
        sa.text("SELECT name, voiceprint_id FROM users WHERE voiceprint_id IS NOT NULL")
    )
    for name, voiceprint in rows:
        shared.setdefault(voiceprint.lower(), []).append(name)
    clashes = [f"{v!r}: {', '.join(map(repr, sorted(n)))}" for v, n in shared.items() if len(n) > 1]
    if clashes:
        raise MigrationRefusedError(
            "a voiceprint id names one user, and these users share one ("
            + "; ".join(sorted(clashes))
            + "): keep it for one of them (`UPDATE users SET voiceprint_id = NULL WHERE name = "
            "'...'` for the others, who set theirs again on the settings page), then migrate "
            "again"
        )
    # As ambient.speakers.resolve_speaker compares them: case-insensitively (NULLs repeat freely).
    op.create_index("uq_users_voiceprint", "users", [sa.text("lower(voiceprint_id)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_voiceprint", table_name="users")
