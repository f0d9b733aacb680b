"""discussion_keys: a sender's message_id is theirs alone; topics keyed without invisible characters

Revision ID: 0027_discussion_keys
Revises: 0026_robot_windows
Create Date: 2026-11-30

A message's id is the bus's now, and the sender's own ``message_id`` is kept beside it
(``client_id``, unique per sender): one user's message under an id no longer refuses or loses
another user's post under the same id. The messages stored before keep their ids, which were
their senders' own (or the bus's), except our agents' posts (``rem-``), whose ids are their keys.

A topic's key drops the invisible format characters and controls inside it (U+200B, U+FEFF):
the keys stored before are made again the same way, so a post finds the discussion it names.
"""

import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_discussion_keys"
down_revision: str | None = "0026_robot_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(stored: str) -> str:
    """A key stored before (NFKC, casefolded, spaces collapsed) without format characters."""
    shown = "".join(c for c in stored if c.isspace() or unicodedata.category(c) not in {"Cf", "Cc"})
    return re.sub(r"\s+", " ", shown.strip())


def upgrade() -> None:
    with op.batch_alter_table("discussion_messages") as batch:
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
    op.execute("UPDATE discussion_messages SET client_id = id WHERE id NOT LIKE 'rem-%'")
    op.create_index(
        "ux_discussion_messages_sender_key",
        "discussion_messages",
        ["from_id", "client_id"],
        unique=True,
    )
    discussions = sa.table("discussions", sa.column("id", sa.String), sa.column("topic_key"))
    bind = op.get_bind()
    for row_id, key in bind.execute(sa.select(discussions.c.id, discussions.c.topic_key)):
        if _key(key) != key:
            bind.execute(
                discussions.update().where(discussions.c.id == row_id).values(topic_key=_key(key))
            )


def downgrade() -> None:
    op.drop_index("ux_discussion_messages_sender_key", "discussion_messages")
    with op.batch_alter_table("discussion_messages") as batch:
        batch.drop_column("client_id")
