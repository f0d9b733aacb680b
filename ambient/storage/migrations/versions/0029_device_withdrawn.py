"""device_withdrawn: the members a 小智 owner (or an admin) stopped their devices answering

Revision ID: 0029_device_withdrawn
Revises: 0028_voiceprint_case
Create Date: 2026-12-02

A consent the owner withdrew stays withdrawn until the owner (or an admin) lets its user back:
the member's own allow put them back at once. Kept per owner, not per device: an allow of
another of the owner's devices (or one added later) answered the member again. Owners from
before withdrew no one; a downgrade drops every withdrawal (members may allow again).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_device_withdrawn"
down_revision: str | None = "0028_voiceprint_case"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    def user() -> sa.ForeignKey:
        return sa.ForeignKey("users.name", ondelete="CASCADE")

    op.create_table(
        "xiaozhi_withdrawals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner", sa.String(63), user(), nullable=False),
        sa.Column("speaker", sa.String(63), user(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner", "speaker", name="uq_xiaozhi_withdrawal"),
    )


def downgrade() -> None:
    op.drop_table("xiaozhi_withdrawals")
