"""voiceprint_case: a voiceprint id holding capitals beyond ASCII is kept in lower case

Revision ID: 0028_voiceprint_case
Revises: 0027_discussion_keys
Create Date: 2026-12-01

A speaker's name is matched in any case by the database's lower(), which folds ASCII alone
(SQLite): a voiceprint id 'JOSÉ' was no voice of its user's, and 'josé' was free for another
user, who was then found for the first one's voice. Ids stored before are kept in lower case as
new ones are (ambient.domain.users.validate_voiceprint).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ambient.storage.migrate import MigrationRefusedError

revision: str = "0028_voiceprint_case"
down_revision: str | None = "0027_discussion_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stored(voiceprint: str) -> str:
    """The id as this revision stores it (validate_voiceprint as of this revision)."""
    if any(not c.isascii() and c.lower() != c for c in voiceprint):
        folded = voiceprint.lower()
        return folded if len(folded) <= 128 else voiceprint
    return voiceprint


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT name, voiceprint_id FROM users WHERE voiceprint_id IS NOT NULL")
    ).all()
    # Users whose ids are one in any case (one took another's in other capitals) are named, so
    # the operator knows whom to change, as 0021 does.
    shared: dict[str, list[str]] = {}
    for name, voiceprint in rows:
        shared.setdefault(_stored(voiceprint).lower(), []).append(name)
    clashes = [f"{v!r}: {', '.join(map(repr, sorted(n)))}" for v, n in shared.items() if len(n) > 1]
    if clashes:
        raise MigrationRefusedError(
            "a voiceprint id names one user, and these users share one in any case ("
            + "; ".join(sorted(clashes))
            + "): keep it for one of them (`UPDATE users SET voiceprint_id = NULL WHERE name = "
            "'...'` for the others, who set theirs again on the settings page), then migrate "
            "again"
        )
    for name, voiceprint in rows:
        if (stored := _stored(voiceprint)) != voiceprint:
            bind.execute(
                sa.text("UPDATE users SET voiceprint_id = :v WHERE name = :n"),
                {"v": stored, "n": name},
            )


def downgrade() -> None:
    pass  # the ids are matched alike in either case: nothing to undo
