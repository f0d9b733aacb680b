"""remediation_state_index: the open runs and the clusters runs are on, read by index

Revision ID: 0031_remediation_state_index
Revises: 0030_ids_64_bit
Create Date: 2026-12-06

What waits for a user's approval, the remediation list's states and the 小智 context provider
read the open runs (state not final) and, for an approver, every cluster a run was on. Runs
are kept for good, so both read the whole table: at 100,000 runs about a second of a voice
call's eight. Indexed, they read the open rows and the clusters' index.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031_remediation_state_index"
down_revision: str | None = "0030_ids_64_bit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_remediations_state", "remediations", ["state"])
    op.create_index("ix_remediations_cluster_id", "remediations", ["cluster_id"])


def downgrade() -> None:
    op.drop_index("ix_remediations_cluster_id", table_name="remediations")
    op.drop_index("ix_remediations_state", table_name="remediations")
